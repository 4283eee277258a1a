"""Real clips with hand-checked boxes (``data/eval_real``), and how a tracker run is scored on them.

Each clip is ``NAME.mp4`` (a cut of evaluation-only footage) with ``NAME.json``::

    {"name", "kind", "target", "source": {...}, "annotation": "how the boxes were made",
     "boxes": [[frame, x, y, w, h], ...],   # frame 0 is the initial box
     "absent": [frame, ...],                # annotated frames where the target is not visible
     "masks": [[frame, [[x, y], ...]], ...]} # optional outlines, for J

Scoring uses the annotated frames after frame 0. A frame where the tracker delivers no box
(SiamMask LOST: the node leaves the target out of ``~/detections``; OpenCV's ``update``
returning False) scores IoU 0, because a follower gets nothing to act on. On a frame where
the target is absent, any delivered box is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .metrics import box_iou_xywh, confidently_wrong_frames, mask_iou, success_auc

__all__ = [
    "REAL_CLIP_DIR",
    "ClipRun",
    "ClipScore",
    "RealClip",
    "load_real_clip",
    "load_real_clips",
    "pooled_score",
    "score_run",
]

REAL_CLIP_DIR: Path = Path(__file__).resolve().parents[2] / "data" / "eval_real"

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class RealClip:
    """Frames and ground truth of one clip; frame indices are 0-based within the clip."""

    name: str
    kind: str
    target: str
    frames: list[np.ndarray]
    boxes: dict[int, Box]
    absent: frozenset[int]
    masks: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def init_box(self) -> Box:
        return self.boxes[0]

    @property
    def scored_frames(self) -> list[int]:
        """Annotated frames after the first, in order."""
        return sorted(i for i in (set(self.boxes) | self.absent) if i > 0)


@dataclass
class ClipRun:
    """What one tracker delivered on frames 1..N-1 of a clip (index 0 of each list = frame 1).

    ``boxes[i]`` is None where the tracker delivered no box; ``masks`` is empty for trackers
    without masks.
    """

    tracker: str
    clip: str
    boxes: list[Box | None]
    ms: list[float]
    masks: dict[int, np.ndarray] = field(default_factory=dict)

    def box_at(self, frame: int) -> Box | None:
        return self.boxes[frame - 1]


@dataclass(frozen=True)
class ClipScore:
    """Per-frame scores of one run on one clip (annotated frames after the first)."""

    tracker: str
    clip: str
    ious: np.ndarray  # visible-target frames; IoU 0 where no box was delivered
    delivered_visible: np.ndarray  # bool, same frames: a box was delivered
    delivered_absent: int  # absent-target frames with a box delivered
    absent: int
    js: np.ndarray  # frames with a hand-drawn mask
    ms: float  # median ms per frame

    @property
    def success(self) -> float:
        return float(np.mean(self.ious > 0.5)) if self.ious.size else float("nan")

    @property
    def mean_iou(self) -> float:
        return float(self.ious.mean()) if self.ious.size else float("nan")

    @property
    def auc(self) -> float:
        return success_auc(self.ious)

    @property
    def confidently_wrong(self) -> float:
        """Share of frames with a delivered box whose IoU is below 0.1 (absent target: IoU 0)."""
        wrong = confidently_wrong_frames(self.delivered_visible, self.ious) + self.delivered_absent
        delivered = np.count_nonzero(self.delivered_visible) + self.delivered_absent
        return wrong / delivered if delivered else 0.0

    @property
    def lost_while_visible(self) -> float:
        """Share of visible-target frames where no box was delivered."""
        return float(np.mean(~self.delivered_visible)) if self.delivered_visible.size else float("nan")


def _polygon_mask(points: Sequence[Sequence[float]], width: int, height: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.uint8)
    cv2.fillPoly(mask, [np.round(np.asarray(points, dtype=np.float64)).astype(np.int32)], 1)
    return mask


def _read_all_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise OSError(f"cannot open video {path}")
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        capture.release()
    return frames


def load_real_clip(json_path: str | Path) -> RealClip:
    """Read one clip; raises ValueError naming the file when its annotation is unusable."""
    json_path = Path(json_path)
    record = json.loads(json_path.read_text())
    frames = _read_all_frames(json_path.parent / record["video"])
    boxes = {int(b[0]): (float(b[1]), float(b[2]), float(b[3]), float(b[4])) for b in record["boxes"]}
    absent = frozenset(int(i) for i in record.get("absent", ()))
    if 0 not in boxes:
        raise ValueError(f"{json_path}: frame 0 has no box (the tracker starts from it)")
    if boxes.keys() & absent:
        raise ValueError(f"{json_path}: frames {sorted(boxes.keys() & absent)} are both boxed and absent")
    beyond = [i for i in (set(boxes) | absent) if i >= len(frames)]
    if beyond:
        raise ValueError(f"{json_path}: annotated frames {sorted(beyond)} beyond the clip's {len(frames)} frames")
    height, width = frames[0].shape[:2]
    if "size" in record and tuple(record["size"]) != (width, height):
        raise ValueError(f"{json_path}: annotated for {record['size']}, the clip decodes to {[width, height]}")
    masks = {int(i): _polygon_mask(points, width, height) for i, points in record.get("masks", ())}
    return RealClip(record["name"], record.get("kind", ""), record.get("target", ""), frames, boxes, absent, masks)


def load_real_clips(directory: str | Path = REAL_CLIP_DIR, names: Sequence[str] = ()) -> list[RealClip]:
    """Every annotated clip in ``directory`` (sorted by name), or only ``names``."""
    paths = sorted(Path(directory).glob("*.json"))
    if names:
        wanted = set(names)
        paths = [p for p in paths if p.stem in wanted]
        missing = wanted - {p.stem for p in paths}
        if missing:
            raise ValueError(f"no annotated clip named {sorted(missing)} in {directory}")
    return [load_real_clip(p) for p in paths]


def score_run(clip: RealClip, run: ClipRun) -> ClipScore:
    """Score ``run`` on the annotated frames of ``clip`` (see the module docstring)."""
    if len(run.boxes) != len(clip.frames) - 1:
        raise ValueError(f"{run.tracker} on {clip.name}: {len(run.boxes)} boxes for {len(clip.frames) - 1} frames")
    ious, delivered, delivered_absent, js = [], [], 0, []
    for frame in clip.scored_frames:
        box = run.box_at(frame)
        if frame in clip.absent:
            delivered_absent += box is not None
            continue
        delivered.append(box is not None)
        ious.append(0.0 if box is None else box_iou_xywh(box, clip.boxes[frame]))
        if frame in clip.masks and run.masks:
            predicted = run.masks.get(frame)
            truth = clip.masks[frame]
            js.append(mask_iou(predicted if predicted is not None else np.zeros_like(truth), truth))
    return ClipScore(
        tracker=run.tracker,
        clip=clip.name,
        ious=np.asarray(ious, dtype=np.float64),
        delivered_visible=np.asarray(delivered, dtype=bool),
        delivered_absent=delivered_absent,
        absent=len(clip.absent & set(clip.scored_frames)),
        js=np.asarray(js, dtype=np.float64),
        ms=float(np.median(run.ms)) if run.ms else float("nan"),
    )


def pooled_score(scores: Sequence[ClipScore], tracker: str) -> ClipScore:
    """One tracker's frames of every clip as one score (``clip`` = "ALL")."""
    mine = [s for s in scores if s.tracker == tracker]
    if not mine:
        raise ValueError(f"no scores for tracker {tracker!r}")
    return ClipScore(
        tracker=tracker,
        clip="ALL",
        ious=np.concatenate([s.ious for s in mine]),
        delivered_visible=np.concatenate([s.delivered_visible for s in mine]),
        delivered_absent=sum(s.delivered_absent for s in mine),
        absent=sum(s.absent for s in mine),
        js=np.concatenate([s.js for s in mine]),
        ms=float(np.median([s.ms for s in mine])),
    )
