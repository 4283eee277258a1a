"""Running the tracker over evaluation data and summarising what it did."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from siammask_ros.tracker.result import RotatedBox, TrackState
from siammask_ros.tracker.tracker import SiamMaskTracker

from .metrics import (
    box_iou_xywh,
    confidently_wrong_frames,
    mask_iou,
    redetection_frames,
    success_auc,
    success_curve,
)
from .real_clips import ClipRun, RealClip
from .sequences import SyntheticSequence

__all__ = [
    "FB_CLIPS",
    "FBClip",
    "FBResult",
    "SequenceResult",
    "forward_backward",
    "hull_xywh",
    "plot_success",
    "run_clip",
    "run_sequence",
    "score_sequence_boxes",
    "summarise",
]


@dataclass(frozen=True)
class SequenceResult:
    """Per-frame scores of one run (frame 0, the initialisation, excluded)."""

    name: str
    box_iou: np.ndarray  # frames where some of the target is visible
    mask_j: np.ndarray  # same frames
    all_box_iou: np.ndarray  # every frame after the first (for re-detection)
    redetect: int | None  # frames to re-detect after a full occlusion; None: none in the sequence
    redetect_failed: bool  # the sequence had an occlusion and the target was never found again
    track_ms: list[float] = field(default_factory=list)
    tracking: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # visible frames in TRACKING

    @property
    def failures(self) -> int:
        """Visible-target frames with no overlap at all."""
        return int(np.count_nonzero(self.box_iou == 0))

    @property
    def confidently_wrong(self) -> int:
        """Visible-target frames reported as TRACKING with box IoU below 0.1."""
        return confidently_wrong_frames(self.tracking, self.box_iou)


def _state_box(center: tuple[float, float], size: tuple[float, float]) -> tuple[float, float, float, float]:
    return (center[0] - size[0] / 2, center[1] - size[1] / 2, size[0], size[1])


def run_sequence(tracker: SiamMaskTracker, seq: SyntheticSequence) -> SequenceResult:
    """Initialise on the first ground-truth box and track the rest of ``seq``."""
    tracker.initialize(seq.frames[0], seq.boxes[0])
    box_ious, js, all_ious, times, tracking = [], [], [], [], []
    for i in range(1, len(seq.frames)):
        start = time.perf_counter()
        result = tracker.track(seq.frames[i])
        times.append((time.perf_counter() - start) * 1000)
        iou = box_iou_xywh(_state_box(result.center, result.size), seq.boxes[i])
        all_ious.append(iou)
        if seq.visible[i] > 0:
            box_ious.append(iou)
            js.append(mask_iou(result.mask, seq.masks[i]))
            tracking.append(result.state is TrackState.TRACKING)
    all_arr = np.asarray(all_ious)
    redetect = None
    failed = False
    if seq.reappear is not None:
        redetect = redetection_frames(all_arr, seq.reappear - 1)  # all_arr starts at frame 1
        failed = redetect is None
    return SequenceResult(
        seq.name, np.asarray(box_ious), np.asarray(js), all_arr, redetect, failed, times, np.asarray(tracking, bool)
    )


def score_sequence_boxes(
    seq: SyntheticSequence, boxes: Sequence[tuple[float, float, float, float] | None], ms: Sequence[float]
) -> SequenceResult:
    """A box-only tracker's output on frames 1..N-1 of ``seq`` as a SequenceResult (J is NaN;
    a frame without a box scores IoU 0 and counts as not tracking)."""
    if len(boxes) != len(seq.frames) - 1:
        raise ValueError(f"{len(boxes)} boxes for {len(seq.frames) - 1} frames of {seq.name}")
    all_ious = np.asarray([0.0 if b is None else box_iou_xywh(b, seq.boxes[i + 1]) for i, b in enumerate(boxes)])
    visible = np.asarray(seq.visible[1:]) > 0
    redetect, failed = None, False
    if seq.reappear is not None:
        redetect = redetection_frames(all_ious, seq.reappear - 1)
        failed = redetect is None
    tracking = np.asarray([b is not None for b in boxes], dtype=bool)[visible]
    return SequenceResult(
        seq.name, all_ious[visible], np.full(int(visible.sum()), np.nan), all_ious, redetect, failed, list(ms), tracking
    )


def hull_xywh(box: RotatedBox) -> tuple[float, float, float, float]:
    """Axis-aligned bounds ``(x, y, w, h)`` of a rotated box."""
    x0, y0 = box.corners.min(axis=0)
    x1, y1 = box.corners.max(axis=0)
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))


def run_clip(tracker: SiamMaskTracker, clip: RealClip, label: str) -> ClipRun:
    """Track ``clip`` from its first box; a frame delivers the published rotated box's bounds
    while the state is TRACKING (what ``~/detections`` carries) and nothing while LOST."""
    tracker.initialize(clip.frames[0], clip.init_box)
    run = ClipRun(label, clip.name, [], [])
    for i in range(1, len(clip.frames)):
        start = time.perf_counter()
        result = tracker.track(clip.frames[i])
        run.ms.append((time.perf_counter() - start) * 1000)
        delivered = result.state is TrackState.TRACKING
        run.boxes.append(hull_xywh(result.rotated_box) if delivered else None)
        if i in clip.masks:
            run.masks[i] = result.mask if delivered else np.zeros_like(result.mask)
    return run


def summarise(results: Sequence[SequenceResult]) -> dict[str, float]:
    """Frame-weighted means over sequences, AUC of the pooled IoUs, failures, re-detection."""
    ious = np.concatenate([r.box_iou for r in results])
    js = np.concatenate([r.mask_j for r in results])
    tracking = np.concatenate([r.tracking for r in results])
    redetects = [r.redetect for r in results if r.redetect is not None]
    occluded = [r for r in results if r.redetect is not None or r.redetect_failed]
    return {
        "frames": float(ious.size),
        "box_iou": float(ious.mean()),
        "mask_j": float(js.mean()),
        "auc": success_auc(ious),
        "failures": float(sum(r.failures for r in results)),
        "redetect_mean": float(np.mean(redetects)) if redetects else float("nan"),
        "redetect_max": float(np.max(redetects)) if redetects else float("nan"),
        "redetected": float(len(redetects)),
        "occlusions": float(len(occluded)),
        "track_ms": float(np.median(np.concatenate([r.track_ms for r in results]))),
        # Shares of visible-target frames: TRACKING with IoU < 0.1, and LOST.
        "confidently_wrong": float(sum(r.confidently_wrong for r in results) / max(1, np.count_nonzero(tracking))),
        "lost_while_visible": float(np.mean(~tracking)) if tracking.size else float("nan"),
    }


@dataclass(frozen=True)
class FBClip:
    """A real clip without ground truth, a box on a clearly visible object, and how far to go."""

    name: str
    label: str
    box: tuple[float, float, float, float]
    frames: int
    start: int = 0


#: Held-out real clips and targets (boxes read off frame 0 by eye).
FB_CLIPS: tuple[FBClip, ...] = (
    FBClip("vtest.avi", "walker-right", (639.0, 239.0, 46.0, 82.0), 40),  # walks left, behind the lamp post
    FBClip("vtest.avi", "walker-left", (252.0, 219.0, 31.0, 90.0), 40),  # walks to the sign and waits there
    FBClip("bikes.mp4", "hatch", (300.0, 5.0, 62.0, 76.0), 28),  # first shot (cut at frame 30), camera moves
)


@dataclass(frozen=True)
class FBResult:
    name: str
    frames: int
    centre_error_px: float  # where the backward run ends vs the initial centre
    return_iou: float  # IoU of the returned box with the initial box


def forward_backward(
    tracker: SiamMaskTracker, frames: Sequence[np.ndarray], box: Sequence[float], name: str
) -> FBResult:
    """Track forward over ``frames``, then from the last frame back to the first."""
    tracker.initialize(frames[0], box)
    result = None
    for frame in frames[1:]:
        result = tracker.track(frame)
    if result is None:
        raise ValueError("forward-backward needs at least two frames")
    tracker.initialize(frames[-1], _state_box(result.center, result.size))
    for frame in frames[-2::-1]:
        result = tracker.track(frame)
    x, y, w, h = box
    error = float(np.hypot(result.center[0] - (x + w / 2), result.center[1] - (y + h / 2)))
    return FBResult(name, len(frames), error, box_iou_xywh(_state_box(result.center, result.size), box))


def plot_success(
    curves: dict[str, Sequence[float]], path: str | Path, title: str = "Synthetic held-out sequences"
) -> None:
    """Success plot (fraction of frames with IoU above each threshold), AUC in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .metrics import SUCCESS_THRESHOLDS

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, ious in curves.items():
        ax.plot(SUCCESS_THRESHOLDS, success_curve(ious), label=f"{label} [AUC {success_auc(ious):.3f}]")
    ax.set_xlabel("overlap threshold (box IoU)")
    ax.set_ylabel("success rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
