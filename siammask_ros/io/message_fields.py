"""What the tracker's output messages contain, as plain nested dicts (no message classes).

One place for the meaning of every output field, shared by whoever builds real messages:
the bag writer (rosbags dataclasses, :mod:`siammask_ros.io.bag`) and the node (rclpy
classes). Keys are the message field names; a field left out keeps its message default.
Stamps are ``(sec, nanosec)`` of the image the result was computed on.

Semantics (msg/TrackedTarget.msg, msg/TrackingResult.msg):
- ``state``: TrackedTarget.IDLE/TRACKING/LOST = 0/1/2.
- ``bbox``: the rotated box from the mask (vision_msgs/BoundingBox2D, ``center.theta`` =
  ``RotatedBox.angle``, ``size_x`` = width).
- ``mask_label``: the value of the target's pixels in the mask image, 0 when the target
  has no mask pixel in this frame (or is IDLE).
- Detection2DArray lists only TRACKING targets, so that a generic consumer never acts on a
  held box; the hypothesis is the target's class (``"target"`` without one) scored by the
  confidence.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from siammask_ros.tracker.result import RotatedBox, TrackResult, TrackState

__all__ = [
    "DEFAULT_CLASS_ID",
    "STATE_CODES",
    "LostClock",
    "TargetFields",
    "bbox_fields",
    "detection_array_fields",
    "header_fields",
    "label_image",
    "tracked_target_fields",
    "tracking_result_fields",
]

#: TrackedTarget's state constants (IDLE=0, TRACKING=1, LOST=2 in msg/TrackedTarget.msg).
STATE_CODES: dict[TrackState, int] = {TrackState.IDLE: 0, TrackState.TRACKING: 1, TrackState.LOST: 2}
#: Hypothesis class of a detection whose target has no class of its own.
DEFAULT_CLASS_ID = "target"

Fields = dict[str, Any]


@dataclass(frozen=True)
class TargetFields:
    """One target in one frame, as plain values (the node's TargetReport has the same fields).

    ``result`` is None for a target that went IDLE without a result in this frame.
    """

    target_id: str
    class_id: str
    label: int
    state: TrackState
    result: TrackResult | None
    time_since_lost_ns: int = 0
    frames_since_lost: int = 0
    reason: str = ""


def header_fields(sec: int, nanosec: int, frame_id: str) -> Fields:
    return {"stamp": {"sec": int(sec), "nanosec": int(nanosec)}, "frame_id": frame_id}


def bbox_fields(box: RotatedBox) -> Fields:
    """vision_msgs/BoundingBox2D: same convention on both sides."""
    return {
        "center": {"position": {"x": float(box.cx), "y": float(box.cy)}, "theta": float(box.angle)},
        "size_x": float(box.width),
        "size_y": float(box.height),
    }


def tracked_target_fields(target: TargetFields) -> Fields:
    """siammask_ros/TrackedTarget without the 3-D fields (``has_position``/``has_bearing`` false)."""
    lost_ns = int(target.time_since_lost_ns)
    fields: Fields = {
        "id": target.target_id,
        "class_id": target.class_id,
        "state": STATE_CODES[target.state],
        "reason": target.reason,
        "frames_since_lost": int(target.frames_since_lost),
        "time_since_lost": {"sec": lost_ns // 1_000_000_000, "nanosec": lost_ns % 1_000_000_000},
    }
    result = target.result
    if result is not None:
        mask_area = result.mask_area
        fields.update(
            confidence=float(result.confidence),
            bbox=bbox_fields(result.rotated_box),
            search_size=int(result.search_size),
            mask_area=mask_area,
            mask_label=int(target.label) if mask_area and target.state is not TrackState.IDLE else 0,
        )
    return fields


def tracking_result_fields(header: Fields, targets: Iterable[TargetFields], latency_ms: float) -> Fields:
    """siammask_ros/TrackingResult: every target, whatever its state."""
    return {
        "header": header,
        "targets": [tracked_target_fields(t) for t in targets],
        "latency_ms": float(latency_ms),
    }


def detection_array_fields(header: Fields, targets: Iterable[TargetFields]) -> Fields:
    """vision_msgs/Detection2DArray of the TRACKING targets (empty when none is)."""
    detections = []
    for target in targets:
        if target.state is not TrackState.TRACKING or target.result is None:
            continue
        hypothesis = {"class_id": target.class_id or DEFAULT_CLASS_ID, "score": float(target.result.confidence)}
        detections.append(
            {
                "header": header,
                "id": target.target_id,
                "bbox": bbox_fields(target.result.rotated_box),
                # The pose is metric and unknown here: left at its defaults.
                "results": [{"hypothesis": hypothesis}],
            }
        )
    return {"header": header, "detections": detections}


def label_image(targets: Iterable[TargetFields], height: int, width: int) -> np.ndarray:
    """uint8 HxW: 0 background, each target's mask pixels set to its label (a later target
    wins where masks overlap)."""
    labels = np.zeros((height, width), dtype=np.uint8)
    for target in targets:
        result = target.result
        if result is not None and target.state is not TrackState.IDLE and result.mask.shape == labels.shape:
            labels[result.mask != 0] = target.label
    return labels


class LostClock:
    """Frames and image time since a target became LOST, from the stamps of its frames.

    ``frames_since_lost`` counts the LOST frames so far (1 on the first); the time is
    measured from the stamp of that first LOST frame (0 on it). Both are 0 otherwise.
    """

    def __init__(self) -> None:
        self._lost_since_ns: int | None = None
        self._frames = 0

    def update(self, state: TrackState, stamp_ns: int) -> tuple[int, int]:
        """``(frames_since_lost, time_since_lost_ns)`` after a frame in ``state``."""
        if state is not TrackState.LOST:
            self._lost_since_ns, self._frames = None, 0
            return 0, 0
        if self._lost_since_ns is None:
            self._lost_since_ns = stamp_ns
        self._frames += 1
        return self._frames, max(0, stamp_ns - self._lost_since_ns)
