"""Running a siammask_tracker node in its own process and talking to it over the real
middleware, for the node tests.

Nothing waits by sleeping: every wait spins the test participant until a condition holds
or a deadline passes. The network rule's variables come from conftest.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.srv import DescribeParameters, GetParameters, ListParameters, SetParameters
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from vision_msgs.msg import Detection2D, Detection2DArray, Detection3DArray

from siammask_ros.msg import TrackingResult
from siammask_ros.ros.conversions import stamp_key
from siammask_ros.srv import SelectTarget, StopTarget

ROOT = Path(__file__).resolve().parents[1]
FRAME_ID = "test_camera_optical_frame"
NODE_START_S = 60.0  # imports torch and loads the model on a shared 2-core machine
FRAME_S = 30.0  # one step on a loaded CPU, with a wide margin


class NodeProcess:
    """``python -m <module>`` (the tracker node by default) in ``namespace``, with its output
    captured in a file. ``remaps`` defaults to the tracker's camera inputs under
    ``<namespace>/camera``."""

    def __init__(
        self, log_path: Path, namespace: str, *params: str, module: str = "siammask_ros.ros.node",
        remaps: dict[str, str] | None = None,
    ) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")
        if remaps is None:
            remaps = {name: f"{namespace}/camera/{name}" for name in ("image", "depth", "camera_info")}
        ros_args = ["-r", f"__ns:={namespace}"]
        for name, target in remaps.items():
            ros_args += ["-r", f"{name}:={target}"]
        for param in params:
            ros_args += ["-p", param]
        env = {**os.environ, "RCUTILS_LOGGING_BUFFERED_STREAM": "0", "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, "--ros-args", *ros_args],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> int:
        """SIGINT, as ros2 launch does, then wait; SIGKILL only if it hangs."""
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


class Participant:
    """A node in its own rclpy context, spun by the test thread only."""

    def __init__(self) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("siammask_test_participant", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return condition()
            self.executor.spin_once(timeout_sec=min(0.05, remaining))
        return True

    def call(self, client, request, timeout: float = FRAME_S, resend_after: float | None = None):
        """The service's answer. ``resend_after`` (for idempotent requests only) sends the
        request again when no answer came in that time: with Fast DDS, a client can see the
        service before the service's reply writer has matched the client, and the first
        reply is then lost (more likely on a loaded machine)."""
        assert client.wait_for_service(timeout_sec=NODE_START_S), f"service {client.srv_name} not available"
        deadline = time.monotonic() + timeout
        while True:
            future = client.call_async(request)
            wait = deadline - time.monotonic() if resend_after is None else min(resend_after, deadline - time.monotonic())
            if self.spin_until(future.done, max(wait, 0.0)):
                return future.result()
            client.remove_pending_request(future)
            assert time.monotonic() < deadline, f"no answer from {client.srv_name}"

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def keep_by_stamp(store: dict) -> Callable:
    return lambda msg: store.__setitem__(stamp_key(msg.header.stamp), msg)


class TrackerClient:
    """Everything the tests publish to and hear from one tracker node."""

    def __init__(self, participant: Participant, process: NodeProcess, namespace: str, compressed: bool = False) -> None:
        self.participant, self.process = participant, process
        node = participant.node
        self.base = base = f"{namespace}/siammask_tracker"
        self.results: dict[tuple[int, int], TrackingResult] = {}
        self.result_order: list[tuple[int, int]] = []
        self.masks: dict[tuple[int, int], Image] = {}
        self.detections: dict[tuple[int, int], Detection2DArray] = {}
        self.detections_3d: dict[tuple[int, int], Detection3DArray] = {}
        self.poses: dict[tuple[int, int], PoseStamped] = {}
        self.debug_images: dict[tuple[int, int], Image] = {}
        self.diagnostics: list[tuple[float, dict[str, str], int, str]] = []  # (arrival, values, level, message)
        self._stamp = 1000
        self._entities = [
            node.create_subscription(TrackingResult, f"{base}/result", self._on_result, 50),
            node.create_subscription(Image, f"{base}/mask", keep_by_stamp(self.masks), 50),
            node.create_subscription(Detection2DArray, f"{base}/detections", keep_by_stamp(self.detections), 50),
            node.create_subscription(Detection3DArray, f"{base}/detections_3d", keep_by_stamp(self.detections_3d), 50),
            node.create_subscription(PoseStamped, f"{base}/target_pose", keep_by_stamp(self.poses), 50),
            node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics(base), 50),
        ]
        # One topic cannot carry two types: raw or compressed, as the node is configured.
        self.image_pub = node.create_publisher(
            CompressedImage if compressed else Image, f"{namespace}/camera/image", qos_profile_sensor_data
        )
        self.depth_pub = node.create_publisher(Image, f"{namespace}/camera/depth", qos_profile_sensor_data)
        self.info_pub = node.create_publisher(CameraInfo, f"{namespace}/camera/camera_info", qos_profile_sensor_data)
        self.targets_pub = node.create_publisher(Detection2DArray, f"{base}/targets", 10)
        self.select = node.create_client(SelectTarget, f"{base}/select_target")
        self.stop = node.create_client(Trigger, f"{base}/stop")
        self.stop_one = node.create_client(StopTarget, f"{base}/stop_target")
        self.set_params = node.create_client(SetParameters, f"{base}/set_parameters")
        self.get_params = node.create_client(GetParameters, f"{base}/get_parameters")
        self.list_params = node.create_client(ListParameters, f"{base}/list_parameters")
        self.describe_params = node.create_client(DescribeParameters, f"{base}/describe_parameters")

    def _on_result(self, msg: TrackingResult) -> None:
        key = stamp_key(msg.header.stamp)
        self.results[key] = msg
        self.result_order.append(key)

    def _on_diagnostics(self, base: str) -> Callable:
        def callback(msg: DiagnosticArray) -> None:
            for status in msg.status:
                if status.name == f"{base}: tracking":
                    values = {kv.key: kv.value for kv in status.values}
                    level = int.from_bytes(status.level, "little")  # a `byte` field
                    self.diagnostics.append((time.monotonic(), values, level, status.message))

        return callback

    def subscribe_debug_image(self) -> None:
        self._entities.append(
            self.participant.node.create_subscription(
                Image, f"{self.base}/debug_image", keep_by_stamp(self.debug_images), 10
            )
        )

    # Frames --------------------------------------------------------------------------

    def next_header(self, step_ns: int = 100_000_000) -> Header:
        """Stamps 0.1 s apart (a 10 Hz camera), so image time is known."""
        self._stamp += 1
        ns = self._stamp * step_ns
        return Header(stamp=Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000), frame_id=FRAME_ID)

    def publish(self, msg) -> Header:
        """Publish an Image or CompressedImage with the next header."""
        msg.header = self.next_header()
        self.image_pub.publish(msg)
        return msg.header

    def result_for(self, header: Header) -> TrackingResult | None:
        return self.results.get(stamp_key(header.stamp))

    def wait_result(self, header: Header, timeout: float = FRAME_S) -> TrackingResult:
        assert self.participant.spin_until(lambda: self.result_for(header) is not None, timeout), (
            f"no result for the frame stamped {stamp_key(header.stamp)}; node output:\n{self.process.output()[-3000:]}"
        )
        return self.result_for(header)

    def handshake(self, frame_msg: Callable[[], object]) -> None:
        """Publish frames until the node answers one (discovery done both ways)."""
        deadline = time.monotonic() + NODE_START_S
        while time.monotonic() < deadline:
            assert self.process.alive(), f"node exited:\n{self.process.output()}"
            header = self.publish(frame_msg())
            if self.participant.spin_until(lambda: self.result_for(header) is not None, 1.0):
                return
        pytest.fail(f"the node never answered a frame; its output:\n{self.process.output()}")

    # Requests -----------------------------------------------------------------------

    def select_box(self, box_xywh, stamp: Time | None = None, target_id: str = "", theta: float = 0.0,
                   image: Image | None = None, class_id: str = ""):
        x, y, w, h = box_xywh
        request = SelectTarget.Request(target_id=target_id, class_id=class_id)
        request.box.center.position.x, request.box.center.position.y = x + w / 2, y + h / 2
        request.box.center.theta = theta
        request.box.size_x, request.box.size_y = float(w), float(h)
        if stamp is not None:
            request.stamp = stamp
        if image is not None:
            request.image = image
        return self.participant.call(self.select, request)

    def stop_all(self):
        return self.participant.call(self.stop, Trigger.Request())

    def stop_target(self, target_id: str):
        return self.participant.call(self.stop_one, StopTarget.Request(target_id=target_id))

    def set_parameters(self, *parameters: Parameter):
        request = SetParameters.Request(parameters=[p.to_parameter_msg() for p in parameters])
        return self.participant.call(self.set_params, request).results

    def get_parameters(self, *names: str):
        return self.participant.call(self.get_params, GetParameters.Request(names=list(names))).values

    def wait_log(self, pattern: str, timeout: float = 10.0) -> bool:
        return self.participant.spin_until(lambda: re.search(pattern, self.process.output()) is not None, timeout)

    def diagnostics_after(self, moment: float, timeout: float = 5.0) -> tuple[dict[str, str], int, str]:
        """The first diagnostics report received after ``moment`` (time.monotonic())."""
        fresh = lambda: [d for d in self.diagnostics if d[0] > moment]  # noqa: E731
        assert self.participant.spin_until(lambda: bool(fresh()), timeout), "no diagnostics from the node"
        _, values, level, message = fresh()[0]
        return values, level, message


def detection(box_xywh, target_id: str = "", class_id: str = "") -> Detection2D:
    from vision_msgs.msg import ObjectHypothesisWithPose

    x, y, w, h = box_xywh
    msg = Detection2D(id=target_id)
    msg.bbox.center.position.x, msg.bbox.center.position.y = x + w / 2, y + h / 2
    msg.bbox.size_x, msg.bbox.size_y = float(w), float(h)
    if class_id:
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = class_id
        hypothesis.hypothesis.score = 0.9
        msg.results = [hypothesis]
    return msg
