"""FollowController and FollowerConfig on real TrackingResult messages (no middleware)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from builtin_interfaces.msg import Time

from siammask_ros.msg import TrackedTarget, TrackingResult
from siammask_ros.ros import follower
from siammask_ros.ros.follower import FIELD_SPECS, Command, FollowController, FollowerConfig

NOW = 100.0
DEFAULTS = FollowerConfig()  # the expected numbers below are worked out from these


def target(
    target_id: str = "t1",
    state: int = TrackedTarget.TRACKING,
    right_rad: float | None = 0.0,
    depth_m: float | None = None,
    box_cx: float = 320.0,
    confidence: float = 0.9,
    reason: str = "",
) -> TrackedTarget:
    """A target ``right_rad`` to the right of the optical axis (None: no bearing)."""
    msg = TrackedTarget(id=target_id, state=state, confidence=confidence, reason=reason)
    msg.bbox.center.position.x, msg.bbox.center.position.y = box_cx, 240.0
    if right_rad is not None:
        msg.has_bearing = True
        msg.bearing.x, msg.bearing.z = math.sin(right_rad), math.cos(right_rad)
    if depth_m is not None:
        msg.has_position = True
        msg.position.z = depth_m
    return msg


def result(*targets: TrackedTarget, stamp_s: float = NOW) -> TrackingResult:
    msg = TrackingResult(targets=list(targets))
    msg.header.stamp = Time(sec=int(stamp_s), nanosec=int(round(stamp_s % 1 * 1e9)))
    return msg


def command(controller: FollowController, msg: TrackingResult | None, age_s: float = 0.0) -> Command:
    return controller.command(msg, NOW, NOW - age_s)


def follow(*targets: TrackedTarget, **config) -> Command:
    return command(FollowController(FollowerConfig(**config)), result(*targets))


# Configuration ---------------------------------------------------------------------------


def test_state_constants_match_the_message():
    assert (follower.IDLE, follower.TRACKING, follower.LOST) == (
        TrackedTarget.IDLE, TrackedTarget.TRACKING, TrackedTarget.LOST
    )


def test_defaults_are_valid_and_every_field_has_a_spec():
    assert FollowController().config == DEFAULTS
    assert set(FIELD_SPECS) == set(DEFAULTS.__dataclass_fields__)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("desired_distance_m", 0.0, r"desired_distance_m=0.0 is outside \[0.2, 20.0\]"),
        ("max_linear_speed", -1.0, r"max_linear_speed=-1.0 is outside"),
        ("stale_after_s", math.nan, r"stale_after_s=nan is outside"),
        ("turn_gain", math.inf, r"turn_gain=inf is outside"),
        ("image_width_px", 0, r"image_width_px=0 is outside"),
        ("image_width_px", 640.0, r"image_width_px must be int, got 640.0"),
        ("distance_gain", True, r"distance_gain must be float, got True"),
        ("allow_reverse", 1, r"allow_reverse must be bool, got 1"),
        ("target_id", None, r"target_id must be str, got None"),
    ],
)
def test_bad_config_values_are_refused_by_name(field, value, message):
    with pytest.raises(ValueError, match=message):
        FollowerConfig(**{field: value})


def test_integer_values_are_accepted_for_float_fields():
    assert FollowerConfig(desired_distance_m=2).desired_distance_m == 2


# Turning and distance --------------------------------------------------------------------


@pytest.mark.parametrize("right_rad", [0.3, -0.3])
def test_turns_towards_the_target_with_the_dead_band_subtracted(right_rad):
    cmd = follow(target(right_rad=right_rad))
    expected = -math.copysign(DEFAULTS.turn_gain * (0.3 - DEFAULTS.angle_dead_band_rad), right_rad)
    assert cmd.angular_z == pytest.approx(expected)
    assert cmd.linear_x == 0.0  # no position: turning only
    assert cmd.reason == "following 't1', turning only (no depth)"


def test_no_turn_inside_the_angle_dead_band():
    assert follow(target(right_rad=0.9 * DEFAULTS.angle_dead_band_rad)).angular_z == 0.0


def test_turn_rate_is_saturated():
    assert follow(target(right_rad=-1.4)).angular_z == DEFAULTS.max_angular_speed
    assert follow(target(right_rad=1.4)).angular_z == -DEFAULTS.max_angular_speed


def test_drives_forward_when_too_far_and_saturates():
    near = follow(target(depth_m=DEFAULTS.desired_distance_m + 0.5))
    expected = DEFAULTS.distance_gain * (0.5 - DEFAULTS.distance_dead_band_m)
    assert near.linear_x == pytest.approx(expected)
    assert near.reason == "following 't1'"
    assert follow(target(depth_m=15.0)).linear_x == DEFAULTS.max_linear_speed


def test_too_close_stops_unless_reverse_is_allowed():
    close = target(depth_m=DEFAULTS.desired_distance_m - 0.6)
    assert follow(close).linear_x == 0.0
    expected = -DEFAULTS.distance_gain * (0.6 - DEFAULTS.distance_dead_band_m)
    assert follow(close, allow_reverse=True).linear_x == pytest.approx(expected)


def test_no_forward_motion_inside_the_distance_dead_band():
    assert follow(target(depth_m=DEFAULTS.desired_distance_m + 0.09)).linear_x == 0.0


@pytest.mark.parametrize("depth", [0.0, -1.0, math.nan, math.inf])
def test_unusable_depth_means_turning_only(depth):
    cmd = follow(target(right_rad=0.5, depth_m=depth))
    assert cmd.linear_x == 0.0 and cmd.angular_z < 0.0
    assert "turning only" in cmd.reason


def test_bearing_comes_from_the_position_when_the_target_has_none():
    msg = target(right_rad=None, depth_m=3.0)
    msg.position.x = -3.0  # 45 degrees to the left
    assert follow(msg).angular_z == DEFAULTS.max_angular_speed


def test_bearing_from_the_box_centre_when_there_is_neither_bearing_nor_position():
    focal_px = 320.0 / math.tan(DEFAULTS.horizontal_fov_rad / 2.0)
    offset_px = 100.0
    cmd = follow(target(right_rad=None, box_cx=320.0 + offset_px))
    expected = -DEFAULTS.turn_gain * (math.atan2(offset_px, focal_px) - DEFAULTS.angle_dead_band_rad)
    assert cmd.angular_z == pytest.approx(expected)
    assert follow(target(right_rad=None, box_cx=320.0)).angular_z == 0.0
    assert follow(target(right_rad=None, box_cx=100.0)).angular_z > 0.0


def test_box_outside_the_configured_image_width_stops():
    cmd = follow(target(right_rad=None, box_cx=700.0))
    assert cmd == Command.stop("target 't1' has no usable bearing")


def test_non_finite_bearing_stops():
    msg = target()
    msg.bearing.x = math.nan
    assert follow(msg) == Command.stop("target 't1' has no usable bearing")


# Stopping --------------------------------------------------------------------------------


def test_waits_for_the_first_result():
    assert command(FollowController(), None) == Command.stop("waiting for results")


def test_lost_target_stops_and_stays_followed():
    controller = FollowController()
    assert command(controller, result(target(right_rad=0.5))).angular_z < 0
    lost = target(state=TrackedTarget.LOST, right_rad=0.5, depth_m=5.0)
    assert command(controller, result(lost, target("t2", right_rad=0.5))) == Command.stop("target 't1' lost")
    assert controller.followed_id == "t1"


def test_idle_target_stops_with_the_trackers_reason_and_is_released():
    controller = FollowController()
    command(controller, result(target()))
    idle = target(state=TrackedTarget.IDLE, reason="stopped by ~/stop")
    assert command(controller, result(idle)) == Command.stop("target 't1' idle: stopped by ~/stop")
    assert controller.followed_id == ""
    assert command(controller, result(idle)) == Command.stop("no TRACKING target")


def test_no_targets_stops():
    assert follow() == Command.stop("no TRACKING target")


def test_vanished_target_stops_and_the_next_tracking_one_is_picked():
    controller = FollowController()
    command(controller, result(target("t1")))
    assert command(controller, result(target("t2"))) == Command.stop("target 't1' gone")
    assert command(controller, result(target("t2"))).reason == "following 't2', turning only (no depth)"


def test_low_confidence_stops():
    cmd = follow(target(right_rad=0.5, confidence=0.4), min_confidence=0.5)
    assert cmd == Command.stop("target 't1' below min_confidence")


@pytest.mark.parametrize("age_s", [DEFAULTS.stale_after_s + 0.01, -0.1])
def test_stale_or_future_receipt_stops(age_s):
    controller = FollowController()
    assert command(controller, result(target(right_rad=0.5)), age_s=age_s) == Command.stop("results stale")


def test_fresh_receipt_at_the_limit_still_steers():
    cmd = command(FollowController(), result(target(right_rad=0.5)), age_s=DEFAULTS.stale_after_s)
    assert cmd.angular_z < 0


def test_image_age_is_checked_only_when_enabled():
    old = result(target(right_rad=0.5), stamp_s=NOW - 2.0)
    assert command(FollowController(), old).angular_z < 0  # unrelated clocks are the default
    checked = FollowController(FollowerConfig(max_image_age_s=1.0))
    assert command(checked, old) == Command.stop("image stamps too old")
    assert command(checked, result(target(right_rad=0.5), stamp_s=NOW - 0.5)).angular_z < 0


# Choosing the target ---------------------------------------------------------------------


def test_first_tracking_target_is_picked_and_kept():
    controller = FollowController()
    lost = target("a", state=TrackedTarget.LOST)
    assert command(controller, result(lost, target("b", right_rad=0.5))).reason.startswith("following 'b'")
    # 'a' is TRACKING again and listed first, but 'b' stays followed.
    cmd = command(controller, result(target("a", right_rad=-0.5), target("b", right_rad=0.5)))
    assert cmd.angular_z < 0 and controller.followed_id == "b"


def test_configured_target_id_is_the_only_one_followed():
    controller = FollowController(FollowerConfig(target_id="b"))
    assert command(controller, result(target("a"))) == Command.stop("target 'b' gone")
    assert command(controller, result(target("a"), target("b", right_rad=0.5))).angular_z < 0


def test_reconfigure_keeps_the_picked_target():
    controller = FollowController()
    command(controller, result(target("a")))
    controller.reconfigure(replace(DEFAULTS, turn_gain=3.0))
    cmd = command(controller, result(target("b", right_rad=0.2), target("a", right_rad=0.2)))
    assert cmd.reason.startswith("following 'a'")
    assert cmd.angular_z == pytest.approx(-3.0 * (0.2 - DEFAULTS.angle_dead_band_rad))
