"""End-to-end runs of ``siammask-track`` in-process, with a randomly initialised checkpoint."""

import io
import json
import math
import sys

import cv2
import numpy as np
import pytest
import torch

from siammask_ros.cli import track
from siammask_ros.cli.track import main
from siammask_ros.model import build_siammask
from siammask_ros.model.weights import save_checkpoint

FRAMES, WIDTH, HEIGHT, FPS = 8, 160, 120, 12.0
BOX = (40, 30, 32, 32)  # x, y, w, h of the square in frame 0
STEP = (3, 2)  # the square moves this many pixels per frame
FG_LOGIT, MASK_LOGIT = 5.0, 4.0
# The record keys the runner documents, written out here rather than imported.
KEYS = {"frame", "state", "confidence", "center", "size", "polygon", "rotated_box", "mask_area", "search_size"}


def _frames():
    rng = np.random.default_rng(0)
    background = rng.integers(90, 130, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0 : BOX[3], 0 : BOX[2]]
    square = np.where(((yy // 4) + (xx // 4)) % 2 == 0, 230, 20).astype(np.uint8)
    square = np.stack([square, square[::-1], square.T], axis=-1)  # textured, not symmetric
    for i in range(FRAMES):
        frame = background.copy()
        x, y = BOX[0] + i * STEP[0], BOX[1] + i * STEP[1]
        frame[y : y + BOX[3], x : x + BOX[2]] = square
        yield frame


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """Random weights with constant heads, so that the outputs are known in advance.

    Every anchor gets background logit 0 and foreground logit FG_LOGIT, no box offset,
    and mask logit MASK_LOGIT over the whole refined patch: the tracker keeps the centre
    (the cosine window picks the central anchor, whose offset is 0), reports the
    foreground softmax as confidence, and segments the patch's footprint.
    """
    torch.manual_seed(0)
    state = build_siammask().state_dict()
    state["rpn_head.cls.head.3.weight"].zero_()
    state["rpn_head.cls.head.3.bias"].copy_(torch.tensor([0.0] * 5 + [FG_LOGIT] * 5))
    state["rpn_head.loc.head.3.weight"].zero_()
    state["rpn_head.loc.head.3.bias"].zero_()
    state["refine_head.post2.weight"].zero_()
    state["refine_head.post2.bias"].fill_(MASK_LOGIT)
    path = tmp_path_factory.mktemp("weights") / "constant_heads.pth"
    save_checkpoint(state, path)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "square.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    for frame in _frames():
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("folder")
    for i, frame in enumerate(_frames()):
        cv2.imwrite(str(path / f"{i}.png"), frame)  # 0.png .. 7.png: natural order matters
    return path


def _box_arg(box=BOX):
    return ",".join(str(v) for v in box)


def _args(source, weights, *extra, box=BOX):
    return [str(source), "--weights", str(weights), "--box", _box_arg(box), "--device", "cpu", *extra]


def _error_line(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("siammask-track: error: ")
    return lines[0]


def test_full_run_writes_records_video_and_masks(tmp_path, clip, checkpoint, capsys):
    out = tmp_path / "out"
    argv = _args(
        clip, checkpoint, "--preset", "vot", "--long-term", "off",
        "--output", str(out / "results.jsonl"), "--video", str(out / "annotated.mp4"),
        "--masks", str(out / "masks"),
    )
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert f"{FRAMES} frames" in captured.out and "0 frames lost" in captured.out
    assert "%|" not in captured.err  # no progress bar when stderr is not a terminal

    lines = (out / "results.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["frame"] for r in records] == list(range(FRAMES))
    assert all(set(r) == KEYS for r in records)

    first = records[0]
    assert first["state"] == "tracking" and first["confidence"] == 1.0
    assert first["center"] == [BOX[0] + BOX[2] / 2, BOX[1] + BOX[3] / 2]
    assert first["size"] == [BOX[2], BOX[3]]
    assert first["search_size"] == 127
    # softmax([0, FG_LOGIT])[1]: between the long-term thresholds 0.85 and 0.998, so the
    # state stays "tracking" (hysteresis).
    confidence = math.exp(FG_LOGIT) / (1.0 + math.exp(FG_LOGIT))
    for record in records[1:]:
        assert record["state"] == "tracking"
        assert record["confidence"] == pytest.approx(confidence, rel=1e-6)
        assert record["center"] == first["center"]
        assert record["search_size"] == 255
        assert record["mask_area"] > 0
        assert len(record["polygon"]) == 4 and all(len(p) == 2 for p in record["polygon"])
        polygon = np.array(record["polygon"])
        box = record["rotated_box"]
        assert polygon.mean(axis=0) == pytest.approx([box["cx"], box["cy"]])

    masks = sorted((out / "masks").iterdir())
    assert [p.name for p in masks] == [f"{i:06d}.png" for i in range(FRAMES)]
    for path, record in zip(masks, records):
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (HEIGHT, WIDTH) and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
        assert np.count_nonzero(mask == 255) == record["mask_area"]
        if record["frame"] > 0:  # the refined patch is centred on the target
            assert mask[round(record["center"][1]), round(record["center"][0])] == 255

    video = cv2.VideoCapture(str(out / "annotated.mp4"))
    assert video.isOpened()
    assert video.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS)  # the input's rate is kept
    count = 0
    while True:
        ok, frame = video.read()
        if not ok:
            break
        assert frame.shape == (HEIGHT, WIDTH, 3)
        count += 1
    video.release()
    assert count == FRAMES


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_image_folder_to_stdout_with_max_frames(folder, checkpoint, capsys, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(_args(folder, checkpoint, "--output", "-", "--max-frames", "3")) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["frame"] for r in records] == [0, 1, 2]
    # On a terminal the progress bar is drawn; the summary stays off standard output.
    assert "3/3" in terminal.getvalue()
    assert "3 frames" in terminal.getvalue()


def test_box_outside_frame_fails_cleanly(tmp_path, clip, checkpoint, capsys):
    argv = _args(clip, checkpoint, "--output", str(tmp_path / "r.jsonl"), box=(500, 400, 20, 20))
    assert main(argv) != 0
    line = _error_line(capsys)
    assert "frame 0:" in line and "box" in line.lower()


def test_missing_weights_file(tmp_path, clip, capsys):
    missing = tmp_path / "missing.pth"
    assert main(_args(clip, missing, "--output", str(tmp_path / "r.jsonl"))) != 0
    line = _error_line(capsys)
    assert "not found" in line and str(missing) in line


def test_corrupt_weights_file(tmp_path, clip, capsys):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"definitely not a torch checkpoint" * 20)
    assert main(_args(clip, corrupt, "--output", str(tmp_path / "r.jsonl"))) != 0
    line = _error_line(capsys)
    assert str(corrupt) in line and "checkpoint" in line


def test_weights_required_without_bundled_model(tmp_path, clip, capsys, monkeypatch):
    monkeypatch.setattr(track, "default_weights_path", lambda: None)
    argv = [str(clip), "--box", _box_arg(), "--output", str(tmp_path / "r.jsonl")]
    assert main(argv) != 0
    assert "--weights is required" in _error_line(capsys)


def test_missing_input(tmp_path, checkpoint, capsys):
    missing = tmp_path / "nothing.mp4"
    assert main(_args(missing, checkpoint, "--output", str(tmp_path / "r.jsonl"))) != 0
    line = _error_line(capsys)
    assert "does not exist" in line and str(missing) in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_unavailable(tmp_path, clip, checkpoint, capsys):
    argv = _args(clip, checkpoint, "--output", str(tmp_path / "r.jsonl"))
    argv[argv.index("cpu")] = "cuda"
    assert main(argv) != 0
    assert "CUDA is not available" in _error_line(capsys)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--box", "1,2,3"], "4 comma-separated"),
        (["--box", "1,2,0,4"], "W=0"),
        (["--box", "1,2,3,4", "--max-frames", "0"], "positive integer"),
        (["--box", "1,2,3,4", "--preset", "fast"], "invalid choice"),
    ],
)
def test_argument_errors(tmp_path, clip, capsys, extra, message):
    with pytest.raises(SystemExit) as info:
        main([str(clip), "--output", str(tmp_path / "r.jsonl"), *extra])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
