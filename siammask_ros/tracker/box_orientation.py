"""Which of a rotated rectangle's equivalent descriptions to publish.

One rectangle has four descriptions ``(width, height, angle)``: ``(w, h, theta + k*pi)``
and ``(h, w, theta + pi/2 + k*pi)``. ``cv2.minAreaRect`` picks one by its own rule, so a
slightly leaning elongated object can come out as ``(41, 161, 5 deg)`` in one frame and
``(161, 41, 85 deg)`` in the next. A follower (a gimbal, a grasp planner) needs the same
physical side to stay ``width`` and the angle to move smoothly; these functions choose
the description, never the rectangle: ``corners`` are passed through unchanged.
"""

from __future__ import annotations

import math
from dataclasses import replace

from .result import RotatedBox

__all__ = ["AMBIGUOUS_WITHIN", "MIN_ASPECT", "canonical_box", "continue_box", "wrap_angle"]

_HALF_PI = math.pi / 2

AMBIGUOUS_WITHIN = math.radians(15.0)
"""How close to the pi/4 tie the nearest angle must be for the side lengths to decide."""
MIN_ASPECT = 1.25
"""Long/short side ratio from which a box's side lengths identify its sides."""


def wrap_angle(angle: float) -> float:
    """``angle`` (radians) normalised to (-pi, pi]."""
    wrapped = math.remainder(angle, 2 * math.pi)  # in [-pi, pi]
    return math.pi if wrapped <= -math.pi else wrapped


def _quarter_turns(box: RotatedBox, quarter_turns: int) -> RotatedBox:
    """The same rectangle described with its angle turned by ``quarter_turns * pi/2``
    (the width and height swap on odd counts)."""
    width, height = (box.height, box.width) if quarter_turns % 2 else (box.width, box.height)
    return replace(box, width=width, height=height, angle=wrap_angle(box.angle + quarter_turns * _HALF_PI))


def canonical_box(box: RotatedBox) -> RotatedBox:
    """The description with ``width`` the side closest to the image x axis: angle in
    [-pi/4, pi/4).

    For use when there is no previous box to continue (the first box of a track, a
    re-detection). An exactly diagonal box (angle pi/4 after folding) gets -pi/4.

    Raises:
        ValueError: a non-finite angle.
    """
    _check_angle(box.angle, "box")
    turns = -round(box.angle / _HALF_PI)  # brings the angle into [-pi/4, pi/4]
    candidate = _quarter_turns(box, turns)
    if candidate.angle >= math.pi / 4:  # the boundary pi/4 belongs to -pi/4
        candidate = _quarter_turns(candidate, -1)
    elif candidate.angle < -math.pi / 4:  # rounding at the boundary from below
        candidate = _quarter_turns(candidate, 1)
    return candidate


def continue_box(
    box: RotatedBox,
    previous: RotatedBox,
    *,
    ambiguous_within: float = AMBIGUOUS_WITHIN,
    min_aspect: float = MIN_ASPECT,
) -> RotatedBox:
    """The description of ``box`` that continues ``previous``: the one whose angle is
    closest to ``previous.angle`` (on the circle), angle normalised to (-pi, pi].

    The side that was ``width`` in ``previous`` stays ``width`` as long as the rectangle
    turns by less than pi/4 between the two, and the angle then changes by that turn
    (modulo the 2*pi wrap at +-pi).

    Near the tie, when the closest angle is within ``ambiguous_within`` (radians) of
    pi/4 away, the angle hardly tells the two namings apart, and one bad mask would
    otherwise rename the sides for the rest of the track. There, if both boxes are
    elongated (long/short side >= ``min_aspect``), the naming that keeps the long side
    long wins (its angle is at most pi/4 + ``ambiguous_within`` away). Pass
    ``ambiguous_within=0`` for the pure nearest-angle rule.

    Raises:
        ValueError: a non-finite angle in either box, or ``ambiguous_within`` outside
            [0, pi/4].
    """
    _check_angle(box.angle, "box")
    _check_angle(previous.angle, "previous box")
    if not 0.0 <= ambiguous_within <= math.pi / 4:
        raise ValueError(f"ambiguous_within must be in [0, pi/4] radians, got {ambiguous_within!r}")
    turns = -round(wrap_angle(box.angle - previous.angle) / _HALF_PI)
    nearest = _quarter_turns(box, turns)
    residual = wrap_angle(nearest.angle - previous.angle)  # in [-pi/4, pi/4]
    if abs(residual) > math.pi / 4 - ambiguous_within and _keeps_long_side(previous, nearest, min_aspect) is False:
        # The runner-up lies on the other side of previous.angle, pi/2 - |residual| away.
        return _quarter_turns(box, turns - 1 if residual > 0 else turns + 1)
    return nearest


def _keeps_long_side(previous: RotatedBox, box: RotatedBox, min_aspect: float) -> bool | None:
    """Whether ``box`` names its long side as ``previous`` does (width or height); None
    when either box is too square for the side lengths to say which side is which."""
    if _aspect(previous) < min_aspect or _aspect(box) < min_aspect:
        return None
    return (previous.width > previous.height) == (box.width > box.height)


def _aspect(box: RotatedBox) -> float:
    short = min(box.width, box.height)
    return math.inf if short <= 0 else max(box.width, box.height) / short


def _check_angle(angle: float, what: str) -> None:
    if not math.isfinite(angle):
        raise ValueError(f"{what} has a non-finite angle {angle!r}; its orientation cannot be chosen")
