"""OpenCV's classical trackers run in .venv-eval through the worker subprocess (real OpenCV)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from siammask_ros.eval.classical import (
    CLASSICAL_TRACKERS,
    ClassicalUnavailable,
    eval_python,
    run_classical,
    run_classical_job,
)
from siammask_ros.tracker.geometry import box_iou_xywh

FRAMES = 30
SIZE = 40  # side of the square target, pixels


@pytest.fixture(scope="module")
def python() -> Path:
    found = eval_python()
    if found is None:
        pytest.fail(".venv-eval is missing: run scripts/setup_eval_venv.sh (make setup creates it)")
    return found


@pytest.fixture(scope="module")
def moving_square() -> tuple[list[np.ndarray], list[tuple[float, float, float, float]]]:
    """A textured square sliding diagonally over static noise; its true box per frame."""
    rng = np.random.default_rng(7)
    background = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    background = (background // 2 + 64).astype(np.uint8)  # lower-contrast clutter
    # A checkerboard with coloured noise: high-frequency texture the trackers can latch on.
    checker = ((np.indices((SIZE, SIZE)) // 8).sum(axis=0) % 2).astype(np.uint8) * 200
    texture = np.clip(checker[..., None] + rng.integers(0, 55, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    frames, boxes = [], []
    for i in range(FRAMES):
        x, y = 40 + 4 * i, 30 + 3 * i
        frame = background.copy()
        frame[y : y + SIZE, x : x + SIZE] = texture
        frames.append(frame)
        boxes.append((float(x), float(y), float(SIZE), float(SIZE)))
    return frames, boxes


def test_csrt_follows_a_moving_square(python: Path, moving_square) -> None:
    frames, truth = moving_square
    (run,) = run_classical([("square", frames, truth[0])], trackers=("csrt",), python=python, threads=1)
    ious = [0.0 if box is None else box_iou_xywh(box, gt) for box, gt in zip(run.boxes, truth[1:])]
    assert np.mean(ious) > 0.5, f"CSRT lost the square: IoU per frame {np.round(ious, 2).tolist()}"


def test_every_tracker_reports_each_frame(python: Path, moving_square) -> None:
    frames, truth = moving_square
    result = run_classical_job([("square", frames, truth[0])], python=python, threads=1)
    assert [(r.tracker, r.sequence) for r in result.runs] == [(t, "square") for t in CLASSICAL_TRACKERS]
    for run in result.runs:
        assert len(run.boxes) == len(run.ms) == FRAMES - 1, run.tracker
        assert all(ms > 0 for ms in run.ms), run.tracker
        assert all(box is None or len(box) == 4 for box in run.boxes), run.tracker
        print(f"{run.tracker}: {np.mean(run.ms):.2f} ms per update (median {np.median(run.ms):.2f})")
    assert result.opencv_version.startswith("5.0.0")
    assert result.contrib_wheel == "opencv-contrib-python-headless 5.0.0.93"


def test_unknown_tracker_is_named(python: Path, moving_square) -> None:
    frames, truth = moving_square
    with pytest.raises(RuntimeError, match="unknown tracker 'medianflow'"):
        run_classical([("square", frames[:2], truth[0])], trackers=("csrt", "medianflow"), python=python)


def test_box_outside_the_image_is_named(python: Path, moving_square) -> None:
    frames, _ = moving_square
    with pytest.raises(RuntimeError, match=r"init_box \[900, 900, 10, 10\]"):
        run_classical([("square", frames[:2], (900, 900, 10, 10))], trackers=("kcf",), python=python)
    with pytest.raises(RuntimeError, match="empty 0x5 box"):
        run_classical([("square", frames[:2], (10, 10, 0.2, 5))], trackers=("kcf",), python=python)


def test_missing_eval_python_is_unavailable(tmp_path: Path, monkeypatch, moving_square) -> None:
    frames, truth = moving_square
    monkeypatch.delenv("SIAMMASK_EVAL_PYTHON", raising=False)
    assert eval_python(tmp_path) is None
    monkeypatch.setenv("SIAMMASK_EVAL_PYTHON", str(tmp_path / "no-python"))
    with pytest.raises(ClassicalUnavailable, match="run scripts/setup_eval_venv.sh"):
        run_classical([("square", frames[:2], truth[0])])
    with pytest.raises(ClassicalUnavailable, match="does not exist"):
        run_classical([("square", frames[:2], truth[0])], python=tmp_path / "no-python")
