"""What the tracker reports for one frame."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["TrackState", "RotatedBox", "TrackResult"]


class TrackState(str, enum.Enum):
    """Tracker state; the values are what the JSON output and the ROS status carry."""

    IDLE = "idle"
    TRACKING = "tracking"
    LOST = "lost"


@dataclass(frozen=True)
class RotatedBox:
    """A box rotated about its centre, in frame pixels.

    ``angle`` (radians, in (-pi, pi]) is the rotation that takes the image +x axis onto
    the direction of the ``width`` side, positive from +x towards +y: clockwise on
    screen because image y points down. This is vision_msgs/BoundingBox2D's convention
    (``center.theta``, ``size_x`` = width). ``corners`` is a (4, 2) float64 array of
    (x, y) in drawing order; which corner comes first says nothing about ``width``.

    One rectangle has four such descriptions (``width``/``height`` swapped with the
    angle turned by pi/2, and the angle turned by pi). The trackers publish the one
    that continues the previous frame's box (``box_orientation.continue_box``): the
    physical side that was ``width`` stays ``width`` and the angle changes by the
    rectangle's turn, so a target turning past +-pi/4 is not relabelled (near that
    tie an elongated box keeps its long side's name). Compare angles modulo 2*pi: a
    target turning on wraps from pi to just above -pi. Where there is no previous box (the
    first tracked frame, the frame after a held box, a re-detection by the long-term
    search) the box is canonical (``box_orientation.canonical_box``):
    ``width`` is the side closest to the image x axis, angle in [-pi/4, pi/4).
    ``from_corners`` itself takes ``width`` from ``corners[0] -> corners[1]`` and
    folds the angle into [-pi/2, pi/2).
    """

    cx: float
    cy: float
    width: float
    height: float
    angle: float
    corners: np.ndarray

    @classmethod
    def from_corners(cls, corners: np.ndarray) -> "RotatedBox":
        """Build from 4 corners in drawing order (as cv2.boxPoints or an axis-aligned box)."""
        pts = np.asarray(corners, dtype=np.float64).reshape(4, 2)
        centre = pts.mean(axis=0)
        side_a = pts[1] - pts[0]
        side_b = pts[2] - pts[1]
        width, height = float(np.hypot(*side_a)), float(np.hypot(*side_b))
        angle = math.atan2(side_a[1], side_a[0])
        # Fold into [-pi/2, pi/2): a box rotated by pi is the same box.
        if angle >= math.pi / 2:
            angle -= math.pi
        elif angle < -math.pi / 2:
            angle += math.pi
        return cls(float(centre[0]), float(centre[1]), width, height, angle, pts)

    @classmethod
    def axis_aligned(cls, cx: float, cy: float, width: float, height: float) -> "RotatedBox":
        x0, y0 = cx - width / 2, cy - height / 2
        corners = np.array(
            [[x0, y0], [x0 + width, y0], [x0 + width, y0 + height], [x0, y0 + height]],
            dtype=np.float64,
        )
        return cls(float(cx), float(cy), float(width), float(height), 0.0, corners)


@dataclass(frozen=True)
class TrackResult:
    """One frame's output.

    ``center``/``size`` are the tracker state (from the box branch), ``rotated_box`` comes
    from the mask (or the state box when the mask is too small), ``confidence`` is the raw
    foreground probability at the chosen position (1.0 on the initialisation frame),
    ``mask`` is uint8 0/1 at frame size, ``search_size`` the model-side search crop used
    (255, or the long-term size while lost; 127 on the initialisation frame).
    """

    state: TrackState
    confidence: float
    center: tuple[float, float]
    size: tuple[float, float]
    rotated_box: RotatedBox
    mask: np.ndarray
    search_size: int

    @property
    def mask_area(self) -> int:
        return int(np.count_nonzero(self.mask))
