"""The follow_target node over the real middleware.

The follower runs in its own process (``python -m siammask_ros.ros.follow_target``) with
``result`` remapped as a user would; this test process is the tracker's stand-in: a
participant in its own rclpy context publishes TrackingResult messages and listens to
``cmd_vel``. Nothing waits by sleeping: every wait spins the participant until a condition
holds or a deadline passes. The network rule's variables come from conftest.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import rclpy
from geometry_msgs.msg import Twist
from rcl_interfaces.srv import SetParameters
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

from node_harness import NodeProcess
from test_follower import target
from siammask_ros.msg import TrackedTarget, TrackingResult

ROOT = Path(__file__).resolve().parents[1]
START_S = 30.0  # process start and discovery on a shared 2-core machine
REACT_S = 10.0  # a handful of 20 Hz timer periods, with a wide margin for a loaded machine
STALE_AFTER_S = 0.5
PUBLISH_PERIOD_S = 0.05
TARGET_ID = "person"


def follower_process(log_path: Path, namespace: str, *params: str) -> NodeProcess:
    """``python -m siammask_ros.ros.follow_target`` in ``namespace``, reading the tracker's result."""
    return NodeProcess(
        log_path, namespace, *params, module="siammask_ros.ros.follow_target",
        remaps={"result": f"{namespace}/siammask_tracker/result"},
    )


class Tracker:
    """The test's participant: publishes results as the tracker would, records cmd_vel."""

    def __init__(self, namespace: str) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("follow_target_test", namespace=namespace, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.commands: list[Twist] = []
        self.node.create_subscription(Twist, f"{namespace}/cmd_vel", self.commands.append, 100)
        self.result_pub = self.node.create_publisher(TrackingResult, f"{namespace}/siammask_tracker/result", 10)
        self.set_params = self.node.create_client(SetParameters, f"{namespace}/follow_target/set_parameters")

    def spin_until(
        self, condition: Callable[[], bool], timeout: float, publish: Callable[[], TrackingResult] | None = None
    ) -> bool:
        """Spin until ``condition()``; meanwhile publish ``publish()`` every PUBLISH_PERIOD_S."""
        deadline = time.monotonic() + timeout
        next_publication = time.monotonic()
        while not condition():
            now = time.monotonic()
            if now >= deadline:
                return condition()
            if publish is not None and now >= next_publication:
                self.result_pub.publish(publish())
                next_publication = now + PUBLISH_PERIOD_S
            self.executor.spin_once(timeout_sec=min(PUBLISH_PERIOD_S, deadline - now))
        return True

    def newest_after(self, count: int) -> Twist | None:
        return self.commands[-1] if len(self.commands) > count else None

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def result(*targets: TrackedTarget) -> TrackingResult:
    return TrackingResult(targets=list(targets))


def tracked(state: int = TrackedTarget.TRACKING, **fields) -> TrackedTarget:
    """The followed target (test_follower.target with this test's id)."""
    return target(TARGET_ID, state, **fields)


def is_zero(twist: Twist | None) -> bool:
    if twist is None:
        return False
    return all(v == 0.0 for v in (twist.linear.x, twist.linear.y, twist.linear.z)) and all(
        v == 0.0 for v in (twist.angular.x, twist.angular.y, twist.angular.z)
    )


class Session:
    """One follower process and the tracker stand-in talking to it."""

    def __init__(self, tmp_path: Path, *params: str) -> None:
        namespace = f"/follow_test_{os.getpid()}_{time.monotonic_ns() % 1_000_000}"
        stale = f"stale_after_s:={STALE_AFTER_S}"
        self.follower = follower_process(tmp_path / "follow_target.log", namespace, stale, *params)
        self.tracker = Tracker(namespace)

    def steer(
        self, make: Callable[[], TrackingResult], accept: Callable[[Twist], bool], timeout: float = REACT_S
    ) -> Twist:
        """Publish ``make()`` continually until a new cmd_vel satisfies ``accept``; return it."""
        count = len(self.tracker.commands)
        newest = lambda: self.tracker.newest_after(count)  # noqa: E731
        ok = self.tracker.spin_until(lambda: newest() is not None and accept(newest()), timeout, make)
        assert ok, f"no matching cmd_vel; last one: {newest()}; follower output:\n{self.follower.output()[-3000:]}"
        return newest()

    def wait_started(self) -> None:
        """Until the first cmd_vel arrives (discovery done), failing early if the follower died."""
        started = lambda: bool(self.tracker.commands) or self.follower.process.poll() is not None  # noqa: E731
        assert self.tracker.spin_until(started, START_S) and self.tracker.commands, (
            f"no cmd_vel from the follower:\n{self.follower.output()}"
        )

    def logged_since(self, position: int, text: str) -> Callable[[], bool]:
        return lambda: text in self.follower.output()[position:]

    def close(self) -> int:
        self.tracker.close()
        return self.follower.stop()


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Iterator[Session]:
    session = Session(tmp_path_factory.mktemp("follow_target"))
    try:
        session.wait_started()
        yield session
    finally:
        session.close()


def steer_then_stop(session: Session, stopping: TrackingResult, reason: str) -> None:
    """Make the follower turn, then publish ``stopping`` until cmd_vel is zero and ``reason`` logged."""
    turning = session.steer(lambda: result(tracked(right_rad=0.4)), lambda t: t.angular.z < 0)
    assert not is_zero(turning)
    position = len(session.follower.output())
    session.steer(lambda: stopping, is_zero)
    assert session.tracker.spin_until(session.logged_since(position, reason), REACT_S, lambda: stopping), (
        f"'{reason}' not logged:\n{session.follower.output()[position:]}"
    )


# Steering -----------------------------------------------------------------------------------


def test_turns_right_towards_a_target_right_of_centre(session):
    twist = session.steer(lambda: result(tracked(right_rad=0.4)), lambda t: t.angular.z != 0.0)
    assert twist.angular.z < 0.0
    assert twist.linear.x == 0.0  # no depth: turning only


def test_turns_left_towards_a_target_left_of_centre(session):
    twist = session.steer(lambda: result(tracked(right_rad=-0.4)), lambda t: t.angular.z != 0.0)
    assert twist.angular.z > 0.0


def test_bearing_from_the_box_when_the_target_has_none(session):
    right = session.steer(lambda: result(tracked(right_rad=None, box_cx=520.0)), lambda t: t.angular.z != 0.0)
    assert right.angular.z < 0.0
    left = session.steer(lambda: result(tracked(right_rad=None, box_cx=120.0)), lambda t: t.angular.z > 0.0)
    assert left.angular.z > 0.0


def test_drives_forward_when_too_far(session):
    twist = session.steer(lambda: result(tracked(depth_m=4.0)), lambda t: t.linear.x != 0.0)
    assert twist.linear.x > 0.0
    assert twist.angular.z == 0.0  # straight ahead


def test_too_close_stops_and_backs_away_only_when_allowed(session):
    too_close = lambda: result(tracked(depth_m=0.5))  # noqa: E731
    session.steer(lambda: result(tracked(depth_m=4.0)), lambda t: t.linear.x > 0.0)
    session.steer(too_close, is_zero)
    request = SetParameters.Request(parameters=[Parameter("allow_reverse", value=True).to_parameter_msg()])
    try:
        assert session.tracker.set_params.wait_for_service(timeout_sec=START_S)
        future = session.tracker.set_params.call_async(request)
        assert session.tracker.spin_until(future.done, REACT_S, too_close)
        assert future.result().results[0].successful
        assert session.steer(too_close, lambda t: t.linear.x != 0.0).linear.x < 0.0
    finally:
        request.parameters[0] = Parameter("allow_reverse", value=False).to_parameter_msg()
        future = session.tracker.set_params.call_async(request)
        assert session.tracker.spin_until(future.done, REACT_S, too_close)


def test_out_of_range_parameter_is_refused_at_run_time(session):
    request = SetParameters.Request(parameters=[Parameter("desired_distance_m", value=-1.0).to_parameter_msg()])
    assert session.tracker.set_params.wait_for_service(timeout_sec=START_S)
    future = session.tracker.set_params.call_async(request)
    assert session.tracker.spin_until(future.done, REACT_S)
    answer = future.result().results[0]
    assert not answer.successful and "desired_distance_m" in answer.reason


# Stopping -----------------------------------------------------------------------------------


def test_lost_target_stops(session):
    lost = result(tracked(state=TrackedTarget.LOST, right_rad=0.4, depth_m=4.0))
    steer_then_stop(session, lost, f"target '{TARGET_ID}' lost")


def test_idle_target_stops(session):
    idle = result(tracked(state=TrackedTarget.IDLE, right_rad=0.4, reason="stopped by ~/stop"))
    steer_then_stop(session, idle, f"target '{TARGET_ID}' idle: stopped by ~/stop")


def test_no_target_stops(session):
    steer_then_stop(session, result(), "no TRACKING target")


def test_stops_when_results_stop(session):
    session.steer(lambda: result(tracked(right_rad=0.4, depth_m=4.0)), lambda t: t.angular.z < 0.0)
    position = len(session.follower.output())
    last_result_s = time.monotonic()
    count = len(session.tracker.commands)
    stopped = lambda: is_zero(session.tracker.newest_after(count))  # noqa: E731
    assert session.tracker.spin_until(stopped, STALE_AFTER_S + REACT_S), "cmd_vel never went to zero"
    delay_s = time.monotonic() - last_result_s
    print(f"zero cmd_vel {delay_s:.3f} s after the last result (stale_after_s={STALE_AFTER_S})")
    assert session.tracker.spin_until(session.logged_since(position, "results stale"), REACT_S)
    # And stays zero while nothing arrives.
    count = len(session.tracker.commands)
    assert session.tracker.spin_until(lambda: len(session.tracker.commands) >= count + 5, REACT_S)
    assert all(is_zero(t) for t in session.tracker.commands[count:])


# Process life -------------------------------------------------------------------------------


def test_publishes_zero_on_shutdown_and_exits_cleanly(tmp_path):
    session = Session(tmp_path, "stale_after_s:=10.0")  # only the shutdown may stop it
    try:
        session.wait_started()
        session.steer(lambda: result(tracked(right_rad=0.4)), lambda t: t.angular.z < 0.0)
        count = len(session.tracker.commands)
        session.follower.process.send_signal(signal.SIGINT)
        # Results keep coming, so a zero can only be the shutdown's.
        assert session.tracker.spin_until(
            lambda: is_zero(session.tracker.newest_after(count)), REACT_S, lambda: result(tracked(right_rad=0.4))
        ), f"no zero cmd_vel on shutdown:\n{session.follower.output()}"
        assert session.tracker.spin_until(lambda: session.follower.process.poll() is not None, REACT_S)
    finally:
        code = session.close()
    assert code == 0, session.follower.output()


def test_bad_parameter_exits_with_status_1(tmp_path):
    follower = follower_process(tmp_path / "bad.log", "/follow_test_bad", "desired_distance_m:=50.0")
    try:
        code = follower.process.wait(timeout=START_S)
    finally:
        follower.stop()
    assert code == 1
    assert "desired_distance_m" in follower.output()
