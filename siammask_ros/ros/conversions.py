"""Messages <-> numpy and tracker results -> messages.

This module imports message classes only, never rclpy, so it can be unit-tested without a
running middleware. ``sensor_msgs/Image`` is read by ``siammask_ros.io.raw_image`` (shared
with the bag reader) rather than by cv_bridge, which is not available everywhere this
package runs.
"""

from __future__ import annotations

import array
import importlib
import math
from collections.abc import Mapping, Sequence

import numpy as np
from geometry_msgs.msg import Point, Vector3
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import BoundingBox2D, Detection2DArray

from siammask_ros.io.raw_image import (
    SUPPORTED_ENCODINGS,
    EmptyImageError,
    ImageConversionError,
    TruncatedImageError,
    UnsupportedEncodingError,
    image_to_array,
)
from siammask_ros.io.message_fields import (
    DEFAULT_CLASS_ID,
    bbox_fields,
    detection_array_fields,
    label_image,
    tracked_target_fields,
)
from siammask_ros.msg import TrackedTarget, TrackingResult
from siammask_ros.ros.targets import TargetReport
from siammask_ros.tracker.result import RotatedBox

__all__ = [
    "CLASS_ID",
    "EmptyImageError",
    "ImageConversionError",
    "InvalidSelectionError",
    "SUPPORTED_ENCODINGS",
    "TruncatedImageError",
    "UnsupportedEncodingError",
    "array_to_image",
    "bbox_to_xywh",
    "detections_from_reports",
    "fill_message",
    "image_to_array",
    "label_image",
    "rotated_box_to_bbox",
    "stamp_key",
    "tracked_target",
    "tracking_result",
]

#: ``class_id`` of a published Detection2D whose target has no class of its own.
CLASS_ID = DEFAULT_CLASS_ID


class InvalidSelectionError(ValueError):
    """A target box that cannot start tracking on the given image."""


# Encodings array_to_image can write, by number of channels.
_OUTPUT_CHANNELS = {"mono8": 1, "bgr8": 3, "rgb8": 3}


def array_to_image(frame: np.ndarray, encoding: str, header: Header) -> Image:
    """A sensor_msgs/Image holding ``frame`` (uint8, HxW for mono8, HxWx3 otherwise).

    ``data`` is filled through ``array.array('B', bytes)``: assigning a numpy array to
    ``Image.data`` goes element by element and costs hundreds of milliseconds at 720p.
    """
    channels = _OUTPUT_CHANNELS.get(encoding)
    if channels is None:
        raise ValueError(f"cannot write encoding {encoding!r}; supported: {', '.join(_OUTPUT_CHANNELS)}")
    expected_ndim = 2 if channels == 1 else 3
    if frame.dtype != np.uint8 or frame.ndim != expected_ndim or (channels == 3 and frame.shape[2] != 3):
        raise ValueError(
            f"{encoding} needs a uint8 array of {'HxW' if channels == 1 else 'HxWx3'}, "
            f"got shape {frame.shape} dtype {frame.dtype}"
        )
    height, width = frame.shape[:2]
    msg = Image()
    msg.header = header
    msg.height, msg.width = height, width
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = width * channels
    msg.data = array.array("B", np.ascontiguousarray(frame).tobytes())
    return msg


def stamp_key(stamp) -> tuple[int, int]:
    """A hashable (sec, nanosec) for a builtin_interfaces/Time."""
    return int(stamp.sec), int(stamp.nanosec)


def bbox_to_xywh(box: BoundingBox2D, image_width: int, image_height: int) -> tuple[float, float, float, float]:
    """The ``(x, y, w, h)`` tracker box of a selection given as a BoundingBox2D.

    The box is centre + size in image pixels. SiamMask starts from an axis-aligned box, so
    ``center.theta`` must be 0 (rotated selections are refused, not silently enlarged to
    their bounding rectangle). A box must have a positive, finite size and overlap the
    image; a box partly outside the image is accepted (the tracker pads the crop).

    Raises:
        InvalidSelectionError: with a message naming the problem.
    """
    cx, cy = box.center.position.x, box.center.position.y
    w, h, theta = box.size_x, box.size_y, box.center.theta
    if not all(math.isfinite(v) for v in (cx, cy, w, h, theta)):
        raise InvalidSelectionError(f"box has a non-finite value (centre ({cx}, {cy}), size {w}x{h}, theta {theta})")
    if w <= 0 or h <= 0:
        raise InvalidSelectionError(f"box size must be positive, got {w}x{h}")
    if abs(theta) > 1e-6:
        raise InvalidSelectionError(f"box must be axis-aligned (center.theta = 0), got theta {theta}")
    x, y = cx - w / 2, cy - h / 2
    if x >= image_width or y >= image_height or x + w <= 0 or y + h <= 0:
        raise InvalidSelectionError(
            f"box (x {x:.1f}, y {y:.1f}, w {w:.1f}, h {h:.1f}) lies outside the "
            f"{image_width}x{image_height} image"
        )
    return float(x), float(y), float(w), float(h)


def fill_message(msg, fields: Mapping):
    """Set ``msg``'s fields from a nested dict of ``siammask_ros.io.message_fields`` (the one
    place that says what each output field holds); returns ``msg``."""
    for name, value in fields.items():
        if isinstance(value, Mapping):
            fill_message(getattr(msg, name), value)
        elif isinstance(value, list) and value and isinstance(value[0], Mapping):
            item_type = type(msg).get_fields_and_field_types()[name][len("sequence<"):-1].replace("/", ".msg.")
            module, _, cls = item_type.rpartition(".")
            item_cls = getattr(importlib.import_module(module), cls)
            setattr(msg, name, [fill_message(item_cls(), item) for item in value])
        else:
            setattr(msg, name, value)
    return msg


def rotated_box_to_bbox(box: RotatedBox) -> BoundingBox2D:
    """Same convention on both sides: ``theta`` = ``angle``, ``size_x`` = width."""
    return fill_message(BoundingBox2D(), bbox_fields(box))


def detections_from_reports(reports: Sequence[TargetReport], header: Header) -> Detection2DArray:
    """Only TRACKING targets, so a generic consumer never acts on a held or stale box; an
    empty array when none is. A target without a class is published as ``"target"``; the
    hypothesis pose is left empty: it is a metric field, and the 3-D position goes to
    ~/detections_3d."""
    msg = fill_message(Detection2DArray(), detection_array_fields({}, reports))
    msg.header = header
    for detection in msg.detections:
        detection.header = header
    return msg


def tracked_target(
    report: TargetReport,
    position: Sequence[float] | None = None,
    bearing: Sequence[float] | None = None,
) -> TrackedTarget:
    """The result-message entry of one target; ``position`` (metres) and ``bearing`` (unit
    vector) are in the image's optical frame when known."""
    msg = fill_message(TrackedTarget(), tracked_target_fields(report))
    if position is not None:
        msg.has_position = True
        msg.position = Point(x=float(position[0]), y=float(position[1]), z=float(position[2]))
    if bearing is not None:
        msg.has_bearing = True
        msg.bearing = Vector3(x=float(bearing[0]), y=float(bearing[1]), z=float(bearing[2]))
    return msg


def tracking_result(header: Header, targets: Sequence[TrackedTarget], latency_ms: float) -> TrackingResult:
    msg = TrackingResult()
    msg.header = header
    msg.targets = list(targets)
    msg.latency_ms = float(latency_ms)
    return msg
