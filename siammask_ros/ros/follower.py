"""Steering towards a tracked target: the pure controller behind ``follow_target``.

No rclpy and no message imports: :class:`FollowController` reads the fields of a
``siammask_ros/TrackingResult`` (duck-typed, so tests and other tools may pass any object
with the same attributes) and returns a :class:`Command` for the robot's base.

Frames: the tracker reports bearing and position in the camera's optical frame (x right,
y down, z forward); commands are in the robot's body frame (x forward, y left, z up), so a
target to the right of the image centre (optical +x) gives ``angular_z < 0`` (turn right).
The camera is assumed level and looking along the robot's +x axis; for a camera mounted
any other way, follow ``~/target_pose`` through TF instead (docs/FOLLOWING.md).

Decisions (docs/FOLLOWING.md explains them to users):

- Only a TRACKING target is followed. LOST, IDLE, an absent target, low confidence and
  stale results all give a zero command, never the last command held.
- Distance is kept with the depth ``position.z``. Without a position the controller only
  turns: a box's size in pixels is no distance (it depends on the object's size and pose),
  and driving forward on a guess could end in a collision.
- Staleness is judged by the time the result was received, on the caller's clock. The
  image stamp is compared with the same clock only when ``max_image_age_s > 0``, because
  a camera on another machine or a replayed bag may stamp with an unrelated clock.
- Dead bands are continuous (the error minus the band), so the command does not jump
  when an error leaves the band.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["Command", "FIELD_SPECS", "FieldSpec", "FollowController", "FollowerConfig"]

# TrackedTarget's state constants, repeated here to keep this module free of messages.
IDLE, TRACKING, LOST = 0, 1, 2


@dataclass(frozen=True)
class FieldSpec:
    """What one :class:`FollowerConfig` field means and the closed range it accepts."""

    description: str
    low: float | None = None
    high: float | None = None


#: Field name -> description and range; the node publishes these as parameter descriptors.
FIELD_SPECS: dict[str, FieldSpec] = {
    "target_id": FieldSpec('target id to follow; "" follows the first TRACKING target, then keeps its id'),
    "desired_distance_m": FieldSpec("depth (position.z, metres) to keep from the target", 0.2, 20.0),
    "distance_gain": FieldSpec("forward speed per metre of depth error (1/s)", 0.0, 5.0),
    "turn_gain": FieldSpec("turn rate per radian of bearing error (1/s)", 0.0, 10.0),
    "max_linear_speed": FieldSpec("limit of |linear.x| (m/s)", 0.0, 5.0),
    "max_angular_speed": FieldSpec("limit of |angular.z| (rad/s)", 0.0, 10.0),
    "distance_dead_band_m": FieldSpec("depth errors smaller than this give no forward motion (m)", 0.0, 5.0),
    "angle_dead_band_rad": FieldSpec("bearing errors smaller than this give no turn (rad)", 0.0, 0.5),
    "allow_reverse": FieldSpec("back away when closer than desired_distance_m (the camera cannot see behind)"),
    "min_confidence": FieldSpec("stop when a TRACKING target's confidence is below this", 0.0, 1.0),
    "stale_after_s": FieldSpec("stop when no result was received for this long (s)", 0.01, 10.0),
    "max_image_age_s": FieldSpec("stop when the result's image stamp is older than this (s); 0 = off", 0.0, 10.0),
    "image_width_px": FieldSpec("image width, for the bearing from the box when a target has none", 1, 100_000),
    "horizontal_fov_rad": FieldSpec("horizontal field of view, for the same fallback (rad)", 0.01, 3.1),
}


@dataclass(frozen=True)
class FollowerConfig:
    """Gains, limits and safety settings of :class:`FollowController`.

    Raises ``ValueError`` naming the field and value when a number is outside its range in
    :data:`FIELD_SPECS`, not finite, or of the wrong type.
    """

    target_id: str = ""
    desired_distance_m: float = 1.5
    distance_gain: float = 0.5
    turn_gain: float = 1.5
    max_linear_speed: float = 0.5
    max_angular_speed: float = 1.0
    distance_dead_band_m: float = 0.1
    angle_dead_band_rad: float = 0.05
    allow_reverse: bool = False
    min_confidence: float = 0.0
    stale_after_s: float = 0.5
    max_image_age_s: float = 0.0
    image_width_px: int = 640
    horizontal_fov_rad: float = 1.2  # about 69 degrees, a common RGB-D colour camera

    def __post_init__(self) -> None:
        for field in fields(self):
            _check_field(field.name, field.type, getattr(self, field.name))


def _check_field(name: str, type_name: str, value: Any) -> None:
    # ``type_name`` is the annotation as a string (postponed evaluation of annotations).
    expected = {"str": str, "bool": bool, "int": int, "float": (int, float)}[type_name]
    if not isinstance(value, expected) or (type_name != "bool" and isinstance(value, bool)):
        raise ValueError(f"FollowerConfig.{name} must be {type_name}, got {value!r}")
    spec = FIELD_SPECS[name]
    if spec.low is None:
        return
    if not math.isfinite(value) or not spec.low <= value <= spec.high:
        raise ValueError(f"FollowerConfig.{name}={value!r} is outside [{spec.low}, {spec.high}]")


@dataclass(frozen=True)
class Command:
    """A velocity for the base (body frame) and why, as a short string for logs."""

    linear_x: float
    angular_z: float
    reason: str

    @classmethod
    def stop(cls, reason: str) -> Command:
        return cls(0.0, 0.0, reason)


class FollowController:
    """Turns each TrackingResult into a velocity command; remembers only the followed id.

    ``command`` may be called at any rate with the newest result; the same result gives the
    same command until it goes stale.
    """

    def __init__(self, config: FollowerConfig | None = None) -> None:
        self.config = config or FollowerConfig()
        self._locked_id = ""

    @property
    def followed_id(self) -> str:
        """The id being followed: the configured one, or the one picked automatically."""
        return self.config.target_id or self._locked_id

    def reconfigure(self, config: FollowerConfig) -> None:
        """New gains and limits; an automatically picked target stays picked."""
        self.config = config

    def command(self, result: Any | None, now_s: float, received_s: float) -> Command:
        """The command for ``result``, received at ``received_s``, at time ``now_s``.

        Both times are seconds on one clock; when ``max_image_age_s > 0`` that clock must
        also be the one of ``result.header.stamp``. ``result`` None means none received yet.
        """
        if result is None:
            return Command.stop("waiting for results")
        age = now_s - received_s
        if not 0.0 <= age <= self.config.stale_after_s:
            return Command.stop("results stale")
        if self.config.max_image_age_s > 0.0:
            stamp = result.header.stamp
            if now_s - (stamp.sec + stamp.nanosec * 1e-9) > self.config.max_image_age_s:
                return Command.stop("image stamps too old")
        target, why_none = self._select(result.targets)
        if target is None:
            return Command.stop(why_none)
        return self._steer(target)

    def _select(self, targets: Any) -> tuple[Any | None, str]:
        wanted = self.followed_id
        if not wanted:
            target = next((t for t in targets if t.state == TRACKING), None)
            if target is None:
                return None, "no TRACKING target"
            self._locked_id = target.id
            return target, ""
        target = next((t for t in targets if t.id == wanted), None)
        if target is None or target.state == IDLE:
            self._locked_id = ""  # gone for good: the next TRACKING target may be followed
            suffix = f": {target.reason}" if target is not None and target.reason else ""
            return None, f"target '{wanted}' {'gone' if target is None else 'idle'}{suffix}"
        return target, ""

    def _steer(self, target: Any) -> Command:
        config = self.config
        if target.state == LOST:
            return Command.stop(f"target '{target.id}' lost")
        if target.confidence < config.min_confidence:
            return Command.stop(f"target '{target.id}' below min_confidence")
        heading = self._heading_left_rad(target)
        if heading is None:
            return Command.stop(f"target '{target.id}' has no usable bearing")
        turn = _saturate(config.turn_gain * _dead_band(heading, config.angle_dead_band_rad), config.max_angular_speed)
        depth = _depth_m(target)
        if depth is None:
            return Command(0.0, turn, f"following '{target.id}', turning only (no depth)")
        error = _dead_band(depth - config.desired_distance_m, config.distance_dead_band_m)
        forward = _saturate(config.distance_gain * error, config.max_linear_speed)
        if not config.allow_reverse:
            forward = max(forward, 0.0)
        return Command(forward, turn, f"following '{target.id}'")

    def _heading_left_rad(self, target: Any) -> float | None:
        """Angle from the robot's forward axis to the target, positive to the left."""
        if target.has_bearing:
            right, forward = target.bearing.x, target.bearing.z
        elif target.has_position:
            right, forward = target.position.x, target.position.z
        else:  # pinhole model from the box centre; the 0-based pixel grid's centre is width/2
            width = self.config.image_width_px
            centre_x = target.bbox.center.position.x
            if not 0.0 <= centre_x <= width:
                return None  # image_width_px does not describe this camera
            right = centre_x - width / 2.0
            forward = (width / 2.0) / math.tan(self.config.horizontal_fov_rad / 2.0)
        if not (math.isfinite(right) and math.isfinite(forward)) or (right == 0.0 and forward == 0.0):
            return None
        return -math.atan2(right, forward)


def _depth_m(target: Any) -> float | None:
    if not target.has_position:
        return None
    depth = target.position.z
    return depth if math.isfinite(depth) and depth > 0.0 else None


def _dead_band(error: float, band: float) -> float:
    return math.copysign(max(0.0, abs(error) - band), error)


def _saturate(value: float, limit: float) -> float:
    return max(-limit, min(limit, value))
