"""Frames in, results out: video and image-folder sources, JSON Lines records, overlays.

Nothing here imports ROS; the ROS node reuses :func:`draw_overlay` for its debug image.
"""

from siammask_ros.io.frames import FrameSource, FrameSourceError, open_frames, parse_box
from siammask_ros.io.render import draw_overlay
from siammask_ros.io.results import JsonLinesWriter, result_to_record

__all__ = [
    "FrameSource",
    "FrameSourceError",
    "JsonLinesWriter",
    "draw_overlay",
    "open_frames",
    "parse_box",
    "result_to_record",
]
