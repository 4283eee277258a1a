"""The ``follow_target`` node: drives a base towards the tracker's target.

Subscribes to ``result`` (siammask_ros/TrackingResult; remap it to
``/siammask_tracker/result``) and publishes ``cmd_vel`` (geometry_msgs/Twist) from a timer
at ``rate_hz``, so a stop is published even when results stop arriving. The steering is
:class:`siammask_ros.ros.follower.FollowController`; its parameters mirror
:class:`FollowerConfig` and may be changed at run time. Each change of the command's reason
is logged once. On Ctrl-C or SIGTERM a zero Twist is published before the node exits.

The ROS clock is the controller's clock: receipt times, the timer and (with
``max_image_age_s``) image stamps, so ``use_sim_time`` works for simulations and bags.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import fields, replace

import rclpy
from geometry_msgs.msg import Twist
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.duration import Duration
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

from siammask_ros.msg import TrackingResult
from siammask_ros.ros.follower import FIELD_SPECS, Command, FollowController, FollowerConfig

NODE_NAME = "follow_target"
RATE_PARAMETER = "rate_hz"
# Best effort matches reliable and best-effort publishers alike; a controller needs only
# the newest result, and a lost one is covered by the next one or by staleness.
_RESULT_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
_STOP_ACK_TIMEOUT_S = 1.0


def config_descriptor(name: str) -> ParameterDescriptor:
    """The parameter descriptor of one FollowerConfig field, with its range."""
    spec = FIELD_SPECS[name]
    descriptor = ParameterDescriptor(name=name, description=spec.description)
    if isinstance(spec.low, int) and isinstance(spec.high, int):
        descriptor.integer_range = [IntegerRange(from_value=spec.low, to_value=spec.high, step=1)]
    elif spec.low is not None:
        descriptor.floating_point_range = [FloatingPointRange(from_value=float(spec.low), to_value=float(spec.high))]
    return descriptor


class FollowTargetNode(Node):
    """Publishes the controller's command for the newest result at a fixed rate."""

    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        defaults = FollowerConfig()
        values = {
            f.name: self.declare_parameter(f.name, getattr(defaults, f.name), config_descriptor(f.name)).value
            for f in fields(FollowerConfig)
        }
        self._controller = FollowController(FollowerConfig(**values))  # ValueError: bad parameter
        rate_descriptor = ParameterDescriptor(
            description="cmd_vel publication rate (Hz), also how often staleness is checked",
            read_only=True,
            floating_point_range=[FloatingPointRange(from_value=1.0, to_value=200.0)],
        )
        rate_hz = self.declare_parameter(RATE_PARAMETER, 20.0, rate_descriptor).value
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._latest: TrackingResult | None = None
        self._received_s = 0.0
        self._reason = ""
        self._cmd_pub = self.create_publisher(Twist, "cmd_vel", 10)
        self.create_subscription(TrackingResult, "result", self._on_result, _RESULT_QOS)
        self.create_timer(1.0 / rate_hz, self._on_timer)

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_result(self, msg: TrackingResult) -> None:
        self._latest, self._received_s = msg, self._now_s()

    def _on_timer(self) -> None:
        command = self._controller.command(self._latest, self._now_s(), self._received_s)
        if command.reason != self._reason:
            self.get_logger().info(command.reason)
            self._reason = command.reason
        self._publish(command)

    def _publish(self, command: Command) -> None:
        twist = Twist()
        twist.linear.x, twist.angular.z = command.linear_x, command.angular_z
        self._cmd_pub.publish(twist)

    def stop_base(self) -> None:
        """Publish a zero Twist and wait (briefly) until subscribers acknowledged it."""
        self._publish(Command.stop("shutting down"))
        self._cmd_pub.wait_for_all_acked(Duration(seconds=_STOP_ACK_TIMEOUT_S))

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        changes = {p.name: p.value for p in parameters if p.name in FIELD_SPECS}
        try:
            config = replace(self._controller.config, **changes)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self._controller.reconfigure(config)
        return SetParametersResult(successful=True)


def main(args: list[str] | None = None) -> int:
    """Run until Ctrl-C, SIGTERM or shutdown; exit status 1 on a bad parameter value.

    rclpy's own signal handlers are off: they would shut the context down before the
    final zero Twist could be published. SIGINT and SIGTERM raise KeyboardInterrupt instead.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    node = None
    try:
        try:
            node = FollowTargetNode()
        except (ValueError, ParameterException) as exc:
            get_logger(NODE_NAME).fatal(str(exc))
            return 1
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            if rclpy.ok():
                node.stop_base()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
