"""Accuracy guard: a fast path must track like the fp32 torch reference.

A candidate (another backend, precision or mode) and the reference tracker run over the
same clip from the same first box; per frame, the candidate's state box and mask are
compared with the reference's (not with ground truth: the guard is about agreement).
It holds when the mean box IoU is at least ``GUARD_BOX_IOU`` and the mean mask IoU at
least ``GUARD_MASK_IOU`` on every clip. Clips: the bundled demo clip (data/demo/) and,
where their footage is installed, the held-out synthetic sequences of ``eval.sequences``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from siammask_ros.tracker.config import LongTermConfig, TrackerConfig, preset
from siammask_ros.tracker.result import TrackResult

from .metrics import box_iou_xywh, mask_iou

__all__ = [
    "GUARD_BOX_IOU",
    "GUARD_MASK_IOU",
    "Clip",
    "GuardResult",
    "compare_on_clip",
    "compare_results",
    "demo_clip",
    "run_clip",
    "synthetic_clips",
]

GUARD_BOX_IOU = 0.98
GUARD_MASK_IOU = 0.97
DEMO_DIR = Path(__file__).resolve().parents[2] / "data" / "demo"


@dataclass(frozen=True)
class Clip:
    """Frames (BGR uint8), the first box ``(x, y, w, h)`` and the tracker parameters."""

    name: str
    frames: tuple[np.ndarray, ...]
    box: tuple[float, float, float, float]
    config: TrackerConfig


@dataclass(frozen=True)
class GuardResult:
    """Agreement of a candidate with the reference on one clip (frame 0 excluded)."""

    clip: str
    frames: int
    box_iou: float  # mean over frames
    mask_iou: float  # mean over frames; two empty masks agree
    min_box_iou: float

    @property
    def holds(self) -> bool:
        return self.box_iou >= GUARD_BOX_IOU and self.mask_iou >= GUARD_MASK_IOU


def demo_clip(max_frames: int | None = None, directory: Path = DEMO_DIR) -> Clip:
    """The bundled demo clip with its box and preset (``demo.json``)."""
    from siammask_ros.io.frames import open_frames

    spec = json.loads((directory / "demo.json").read_text())
    frames = []
    for _, frame in open_frames(directory / spec["video"]):
        frames.append(frame)
        if max_frames is not None and len(frames) >= max_frames:
            break
    config = preset(spec.get("preset", "vot"))
    config = config.with_changes(long_term=LongTermConfig(enabled=bool(spec.get("long_term", False))))
    return Clip("demo", tuple(frames), tuple(float(v) for v in spec["box"]), config)


def synthetic_clips(count: int | None = None, frames: int | None = None, long_term: bool = True) -> list[Clip]:
    """The held-out synthetic sequences whose footage is installed (none when it is not);
    ``long_term`` exercises the lost-mode search after the occlusions."""
    import dataclasses

    from siammask_ros.train.sources import EVAL_STILLS, find_source, load_pool

    from .sequences import DEFAULT_SPECS, make_sequence

    specs = [s for s in DEFAULT_SPECS if find_source(s.background) is not None][:count]
    if not specs:
        return []
    pool = load_pool("eval", stills=EVAL_STILLS, videos=())
    config = TrackerConfig(long_term=LongTermConfig(enabled=long_term))
    clips = []
    for spec in specs:
        if frames is not None:
            spec = dataclasses.replace(spec, frames=min(frames, spec.frames))
        seq = make_sequence(spec, pool)
        clips.append(Clip(seq.name, seq.frames, tuple(float(v) for v in seq.boxes[0]), config))
    return clips


def _state_box(result: TrackResult) -> tuple[float, float, float, float]:
    (cx, cy), (w, h) = result.center, result.size
    return (cx - w / 2, cy - h / 2, w, h)


def run_clip(make_tracker: Callable[[TrackerConfig], object], clip: Clip, lost: bool = False) -> list[TrackResult]:
    """Results of a fresh single-target tracker over ``clip`` (frame 0 initialises);
    ``lost`` marks the target lost before every frame (the lost-mode search throughout,
    with long-term search on)."""
    tracker = make_tracker(clip.config)
    tracker.initialize(clip.frames[0], clip.box)
    results = []
    for frame in clip.frames[1:]:
        if lost:
            tracker.mark_lost()
        results.append(tracker.track(frame))
    return results


def compare_on_clip(
    reference: Callable[[TrackerConfig], object], candidate: Callable[[TrackerConfig], object], clip: Clip
) -> GuardResult:
    """Run both tracker factories over ``clip`` and compare them frame by frame."""
    return compare_results(clip.name, run_clip(reference, clip), run_clip(candidate, clip))


def compare_results(name: str, reference: Sequence[TrackResult], candidate: Sequence[TrackResult]) -> GuardResult:
    """Agreement of two runs over the same frames."""
    if len(reference) != len(candidate) or not reference:
        raise ValueError(f"{name}: runs of {len(reference)} and {len(candidate)} frames cannot be compared")
    boxes = [box_iou_xywh(_state_box(a), _state_box(b)) for a, b in zip(reference, candidate)]
    masks = [mask_iou(a.mask, b.mask) for a, b in zip(reference, candidate)]
    return GuardResult(name, len(boxes), float(np.mean(boxes)), float(np.mean(masks)), float(np.min(boxes)))
