"""The real evaluation clips (data/eval_real), their scoring, and ``python -m siammask_ros.eval`` on one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from siammask_ros.eval.real_clips import REAL_CLIP_DIR, ClipRun, RealClip, load_real_clips, pooled_score, score_run

REPO = Path(__file__).resolve().parent.parent
KINDS = {"person", "bike", "moving-camera"}


@pytest.fixture(scope="module")
def clips() -> list[RealClip]:
    return load_real_clips()


def test_every_clip_is_annotated_and_documented(clips: list[RealClip]) -> None:
    assert len(clips) >= 4
    assert KINDS <= {clip.kind for clip in clips}
    for path in sorted(REAL_CLIP_DIR.glob("*.json")):
        record = json.loads(path.read_text())
        assert record["annotation"] and record["target"], path.name
        assert record["source"]["file"] and record["source"]["licence"], path.name
    for clip in clips:
        # bikes-hatch: the hatch is in view for 14 frames; its 16 absent frames are annotated too.
        assert len(clip.boxes) >= 14 and len(clip.boxes) + len(clip.absent) >= 20, clip.name


def test_boxes_lie_in_their_frames(clips: list[RealClip]) -> None:
    for clip in clips:
        height, width = clip.frames[0].shape[:2]
        for frame, (x, y, w, h) in clip.boxes.items():
            assert w > 0 and h > 0, (clip.name, frame)
            assert x >= 0 and y >= 0 and x + w <= width + 1 and y + h <= height + 1, (clip.name, frame)


def test_outlines_agree_with_their_boxes(clips: list[RealClip]) -> None:
    """Each hand-drawn outline fills most of its frame's box and does not leave it."""
    checked = 0
    for clip in clips:
        for frame, mask in clip.masks.items():
            if frame not in clip.boxes:
                continue
            x, y, w, h = clip.boxes[frame]
            ys, xs = np.nonzero(mask)
            assert xs.min() >= x - 3 and xs.max() <= x + w + 3, (clip.name, frame)
            assert ys.min() >= y - 3 and ys.max() <= y + h + 3, (clip.name, frame)
            checked += 1
    assert checked >= 10


def _clip() -> RealClip:
    frames = [np.zeros((60, 80, 3), np.uint8) for _ in range(5)]
    boxes = {0: (10.0, 10.0, 20.0, 20.0), 1: (12.0, 10.0, 20.0, 20.0), 3: (20.0, 10.0, 20.0, 20.0)}
    return RealClip("toy", "person", "", frames, boxes, frozenset({4}))


def test_scoring_by_hand() -> None:
    clip = _clip()
    perfect = ClipRun("a", "toy", [clip.boxes[1], None, clip.boxes[3], None], [1.0] * 4)
    s = score_run(clip, perfect)
    assert s.success == 1.0 and s.mean_iou == 1.0 and s.confidently_wrong == 0.0 and s.lost_while_visible == 0.0

    # frame 1 missed, frame 3 off by half a box, a box on the absent frame 4.
    off = ClipRun("b", "toy", [None, None, (30.0, 10.0, 20.0, 20.0), (0.0, 0.0, 5.0, 5.0)], [2.0] * 4)
    s = score_run(clip, off)
    assert s.ious.tolist() == [0.0, pytest.approx(1 / 3)]
    assert s.success == 0.0 and s.lost_while_visible == 0.5
    assert s.confidently_wrong == 0.5  # of 2 delivered boxes, the absent-frame one is wrong
    pooled = pooled_score([score_run(clip, perfect), s], "b")
    assert pooled.clip == "ALL" and pooled.ious.size == 2


def test_a_run_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="3 boxes for 4 frames"):
        score_run(_clip(), ClipRun("a", "toy", [None] * 3, []))


def test_eval_cli_compares_siammask_and_csrt_on_a_real_clip(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    proc = subprocess.run(
        [sys.executable, "-m", "siammask_ros.eval", "--sections", "real", "--clips", "bikes-hatch",
         "--classical", "csrt", "--modes", "long,short", "--threads", "1", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    trackers = {row["tracker"] for row in summary["real"]["pooled"]}
    assert trackers == {"siammask-long", "siammask-short", "csrt"}
    assert (out / "success_real.png").stat().st_size > 0
    for row in summary["real"]["pooled"]:
        assert row["frames"] == 13 and 0.0 <= row["mean_iou"] <= 1.0 and row["ms"] > 0


def test_eval_cli_names_an_unknown_clip(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "siammask_ros.eval", "--sections", "real", "--clips", "no-such-clip",
         "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0 and "no-such-clip" in proc.stderr
