"""The ``siammask_tracker`` node: SiamMask on a camera stream, one target at a time.

Threads: the executor runs the image callback, which only converts the message, stores
it as the newest frame (and in a ring buffer for selections) and wakes the worker; the
worker thread runs the network on the newest frame only. A frame replaced before the
worker took it (or one not newer than the frame a selection started on) is counted as
dropped, so the node never builds a backlog. Selections,
``~/stop``, parameters and diagnostics run in other callback groups of a
MultiThreadedExecutor, so they are not stuck behind image callbacks; they wait at most
for the one inference in progress, because a lock keeps ``initialize``/``reset`` and
``track`` apart.

Outputs carry the header (stamp and frame_id) of the image they were computed on. While
IDLE only ``~/status`` (state IDLE) is published, once per processed image; ``~/mask``
and ``~/detection`` are published for every tracked image, LOST included (``~/status``
and the detection's score tell whether to trust them). The initialisation frame itself
produces no outputs, so each topic's stamps only move forward.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from vision_msgs.msg import BoundingBox2D, Detection2D

from siammask_ros.io.render import draw_overlay
from siammask_ros.model import CheckpointError, build_siammask, default_weights_path
from siammask_ros.msg import TrackingStatus
from siammask_ros.ros.conversions import (
    ImageConversionError,
    InvalidSelectionError,
    array_to_image,
    bbox_to_xywh,
    detection_from_result,
    idle_status,
    image_to_array,
    stamp_key,
    status_from_result,
)
from siammask_ros.ros.params import PARAMETERS, PRESET_PARAMETERS, preset_defaults, tracker_config, validate_choices
from siammask_ros.srv import SelectTarget
from siammask_ros.tracker import InvalidBoxError, InvalidFrameError, SiamMaskTracker, TrackResult, TrackState, to_bgr
from siammask_ros.tracker.config import TrackerConfig

__all__ = ["ConfigurationError", "TrackerNode", "main"]

NODE_NAME = "siammask_tracker"
DIAGNOSTICS_PERIOD_S = 1.0
LOG_THROTTLE_S = 5.0
_OUTPUT_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
_NO_MODEL_HINT = (
    "no model: the `weights` parameter is empty and no default model is bundled with this "
    "installation; restart the node with weights:=/path/to/SiamMask_VOT.pth (and the matching preset)"
)


class ConfigurationError(RuntimeError):
    """A parameter value the node cannot start with; the message names it."""


class _Frame(NamedTuple):
    seq: int  # receipt order
    header: Header
    image: np.ndarray  # uint8 HxW or HxWx3, read-only
    color_order: str
    received: float  # time.monotonic() at receipt


@dataclass
class _Target:
    target_id: str
    init_seq: int  # frames up to this one are older than the template
    frames_since_lost: int = 0


@dataclass
class _Stats:
    """Counters since start (totals) and latencies since the last diagnostics report."""

    received: int = 0
    processed: int = 0
    dropped: int = 0
    rejected: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)


class _FrameStore:
    """The newest unprocessed frame and a ring buffer of recent ones."""

    def __init__(self, size: int) -> None:
        self._cond = threading.Condition()
        self._pending: _Frame | None = None
        self._recent: deque[_Frame] = deque(maxlen=size)
        self._closed = False

    def put(self, frame: _Frame) -> bool:
        """Store ``frame`` as the newest; True if it replaced one never processed (a drop)."""
        with self._cond:
            dropped = self._pending is not None
            self._pending = frame
            self._recent.append(frame)
            self._cond.notify()
        return dropped

    def take(self) -> _Frame | None:
        """Wait for the newest unprocessed frame; None once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._pending is not None or self._closed)
            frame, self._pending = self._pending, None
            return None if self._closed else frame

    def find(self, stamp: tuple[int, int]) -> tuple[_Frame, bool] | None:
        """The buffered frame with this stamp and True, else the newest and False; None if empty.

        A zero stamp asks for the newest frame and counts as found.
        """
        with self._cond:
            if not self._recent:
                return None
            newest = self._recent[-1]
            if stamp == (0, 0):
                return newest, True
            for frame in reversed(self._recent):
                if stamp_key(frame.header.stamp) == stamp:
                    return frame, True
            return newest, False

    def resize(self, size: int) -> None:
        with self._cond:
            if size != self._recent.maxlen:
                self._recent = deque(self._recent, maxlen=size)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def _load_tracker(weights: str, device: str, config: TrackerConfig) -> SiamMaskTracker:
    """A tracker around the checkpoint's network (its recorded architecture) on ``device``."""
    try:
        model = build_siammask(arch=None, weights=weights, device=device, optimize=True)
    except (CheckpointError, ValueError) as exc:  # unreadable file, unknown arch, unavailable device
        raise ConfigurationError(f"cannot run weights {weights!r} on device {device!r}: {exc}") from exc
    return SiamMaskTracker(model, config)


class TrackerNode(Node):
    """SiamMask tracking on ``image``; see the module docstring and README for the interface.

    Raises:
        ConfigurationError: a parameter makes the node unusable (bad weights file, device,
            or inconsistent values). An empty ``weights`` with no bundled model is not an
            error: the node runs and refuses selections with a message saying so.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._values = self._declare_parameters()
        try:
            validate_choices(self._values)
            config = tracker_config(self._values)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc

        self._tracker: SiamMaskTracker | None = None
        self._unavailable = ""
        self._model_name = "none"
        self._load_model(config)

        self._tracker_lock = threading.Lock()  # initialize/reset vs track
        self._state_lock = threading.Lock()  # counters, pending config
        self._target: _Target | None = None
        self._pending_config: TrackerConfig | None = None
        self._stats = _Stats()
        self._seq = 0
        self._target_count = 0
        self._throttle: dict[str, tuple[float, int]] = {}
        self._frames = _FrameStore(self._values["frame_buffer_size"])

        self._create_interfaces()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._last_report = (time.monotonic(), 0, 0)
        self._worker = threading.Thread(target=self._work, name="siammask_inference", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"images from '{self._image_sub.topic_name}', model {self._model_name} on {self._device_name} "
            f"(torch CPU threads: {torch.get_num_threads()}), preset {self._values['preset']}; "
            f"select a target with {self.get_fully_qualified_name()}/select_target or on {self._target_sub.topic_name}"
        )

    # ---------------------------------------------------------------------------------
    # Set-up
    # ---------------------------------------------------------------------------------

    def _declare_parameters(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        try:
            for spec in PARAMETERS:
                if spec.name in PRESET_PARAMETERS:
                    continue
                values[spec.name] = self.declare_parameter(spec.name, spec.default, spec.descriptor()).value
            try:
                defaults = preset_defaults(values["preset"])
            except ValueError as exc:
                raise ConfigurationError(str(exc)) from exc
            for spec in PARAMETERS:
                if spec.name in PRESET_PARAMETERS:
                    values[spec.name] = self.declare_parameter(
                        spec.name, defaults[spec.name], spec.descriptor()
                    ).value
        except ParameterException as exc:
            raise ConfigurationError(f"invalid parameter: {exc}") from exc
        return values

    def _load_model(self, config: TrackerConfig) -> None:
        if self._values["cpu_threads"] > 0:
            torch.set_num_threads(self._values["cpu_threads"])
        weights = self._values["weights"] or default_weights_path()
        if weights is None:
            self._unavailable = _NO_MODEL_HINT
            self.get_logger().error(self._unavailable)
            return
        self._tracker = _load_tracker(str(weights), self._values["device"], config)
        self._model_name = str(weights)

    @property
    def _device_name(self) -> str:
        return str(self._tracker.device) if self._tracker is not None else "none"

    def _create_interfaces(self) -> None:
        reliability = (
            ReliabilityPolicy.RELIABLE
            if self._values["qos.reliability"] == "reliable"
            else ReliabilityPolicy.BEST_EFFORT
        )
        image_qos = QoSProfile(
            depth=self._values["qos.depth"], reliability=reliability, history=HistoryPolicy.KEEP_LAST
        )
        images = MutuallyExclusiveCallbackGroup()
        control = MutuallyExclusiveCallbackGroup()
        self._image_sub = self.create_subscription(Image, "image", self._on_image, image_qos, callback_group=images)
        self._target_sub = self.create_subscription(
            Detection2D, "~/target", self._on_target, 10, callback_group=control
        )
        self._select_srv = self.create_service(
            SelectTarget, "~/select_target", self._on_select_target, callback_group=control
        )
        self._stop_srv = self.create_service(Trigger, "~/stop", self._on_stop, callback_group=control)
        self._mask_pub = self.create_publisher(Image, "~/mask", _OUTPUT_QOS)
        self._detection_pub = self.create_publisher(Detection2D, "~/detection", _OUTPUT_QOS)
        self._status_pub = self.create_publisher(TrackingStatus, "~/status", _OUTPUT_QOS)
        self._debug_pub = self.create_publisher(Image, "~/debug_image", _OUTPUT_QOS)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)

    # ---------------------------------------------------------------------------------
    # Inputs
    # ---------------------------------------------------------------------------------

    def _on_image(self, msg: Image) -> None:
        received = time.monotonic()
        with self._state_lock:
            self._stats.received += 1
        try:
            image, color_order = image_to_array(msg)
        except ImageConversionError as exc:
            self._reject(exc.reason, f"ignoring image on '{self._image_sub.topic_name}': {exc}")
            return
        self._seq += 1  # only this callback's (mutually exclusive) group writes it
        if self._frames.put(_Frame(self._seq, msg.header, image, color_order, received)):
            with self._state_lock:
                self._stats.dropped += 1

    def _on_target(self, msg: Detection2D) -> None:
        self._select(msg.bbox, stamp_key(msg.header.stamp), msg.id)  # logs the outcome

    def _on_select_target(self, request: SelectTarget.Request, response: SelectTarget.Response):
        ok, message, target_id = self._select(request.box, stamp_key(request.stamp), request.target_id)
        response.success, response.message, response.target_id = ok, message, target_id
        return response

    def _on_stop(self, request: Trigger.Request, response: Trigger.Response):
        with self._tracker_lock:
            target, self._target = self._target, None
            if self._tracker is not None:
                self._tracker.reset()
        response.success = True
        response.message = f"stopped tracking {target.target_id}" if target else "already idle"
        self.get_logger().info(response.message)
        return response

    def _select(self, box: BoundingBox2D, stamp: tuple[int, int], target_id: str) -> tuple[bool, str, str]:
        """Start tracking ``box``; (success, message, target id). Never raises for bad input."""
        found = self._frames.find(stamp)
        if found is None:
            return self._refuse(
                "selection_no_image", f"no image received yet on '{self._image_sub.topic_name}'"
            )
        if self._tracker is None:
            return self._refuse("selection_no_model", self._unavailable)
        frame, exact = found
        height, width = frame.image.shape[:2]
        try:
            box_xywh = bbox_to_xywh(box, width, height)
            with self._tracker_lock:
                self._tracker.initialize(frame.image, box_xywh, frame.color_order)
                self._target_count += 1
                target_id = target_id or f"target_{self._target_count}"
                self._target = _Target(target_id, frame.seq)
        except (InvalidSelectionError, InvalidBoxError, InvalidFrameError) as exc:
            return self._refuse("selection_invalid_box", f"unusable box: {exc}")
        where = f"frame stamped {stamp_key(frame.header.stamp)}"
        if not exact:
            where = f"the newest frame ({where}): no buffered frame has stamp {stamp}"
        x, y, w, h = box_xywh
        message = f"tracking {target_id} from box x={x:.1f} y={y:.1f} w={w:.1f} h={h:.1f} on {where}"
        self.get_logger().info(message)
        return True, message, target_id

    def _refuse(self, reason: str, message: str) -> tuple[bool, str, str]:
        with self._state_lock:
            self._stats.rejected[reason] += 1
        self.get_logger().warn(f"selection refused: {message}")
        return False, message, ""

    def _on_set_parameters(self, parameters: list) -> SetParametersResult:
        candidate = dict(self._values)
        candidate.update({p.name: p.value for p in parameters})
        try:
            validate_choices(candidate)
            config = tracker_config(candidate)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        with self._state_lock:
            self._values = candidate
            self._pending_config = config
        self._frames.resize(candidate["frame_buffer_size"])
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------------------------
    # Inference worker
    # ---------------------------------------------------------------------------------

    def _work(self) -> None:
        while (frame := self._frames.take()) is not None:
            try:
                self._process(frame)
            except Exception as exc:  # the worker must survive anything one frame does
                if not self.context.ok():
                    return  # shutting down: publishers are gone
                self._reject("tracker_error", f"tracking failed on one frame: {type(exc).__name__}: {exc}")

    def _process(self, frame: _Frame) -> None:
        result, target = None, None
        with self._tracker_lock:
            self._apply_pending_config()
            target = self._target
            if target is not None and self._tracker is not None:
                if frame.seq <= target.init_seq:  # not newer than the selection frame
                    with self._state_lock:
                        self._stats.dropped += 1
                    return
                try:
                    result = self._tracker.track(frame.image, frame.color_order)
                except InvalidFrameError as exc:
                    self._reject("invalid_frame", f"cannot track on image: {exc}")
                    return
                target.frames_since_lost = target.frames_since_lost + 1 if result.state is TrackState.LOST else 0
        with self._state_lock:
            self._stats.processed += 1
        if result is None:
            self._status_pub.publish(idle_status(frame.header, self._latency_ms(frame)))
            self._publish_debug(frame, None)
        else:
            self._publish_result(frame, result, target)

    def _apply_pending_config(self) -> None:
        with self._state_lock:
            config, self._pending_config = self._pending_config, None
        if config is not None and self._tracker is not None:
            self._tracker.config = config

    def _publish_result(self, frame: _Frame, result: TrackResult, target: _Target) -> None:
        values = self._values
        if values["publish.mask"]:
            mask = np.where(result.mask != 0, np.uint8(255), np.uint8(0))
            self._mask_pub.publish(array_to_image(mask, "mono8", frame.header))
        if values["publish.detection"]:
            self._detection_pub.publish(detection_from_result(result, frame.header, target.target_id))
        latency = self._latency_ms(frame)
        self._status_pub.publish(
            status_from_result(result, frame.header, target.target_id, target.frames_since_lost, latency)
        )
        self._publish_debug(frame, result)

    def _publish_debug(self, frame: _Frame, result: TrackResult | None) -> None:
        if not self._values["publish.debug_image"] or self._debug_pub.get_subscription_count() == 0:
            return
        image = to_bgr(frame.image, frame.color_order)
        if result is not None:
            image = draw_overlay(image, result)
        self._debug_pub.publish(array_to_image(image, "bgr8", frame.header))

    def _latency_ms(self, frame: _Frame) -> float:
        latency = (time.monotonic() - frame.received) * 1000.0
        with self._state_lock:
            self._stats.latencies_ms.append(latency)
        return latency

    # ---------------------------------------------------------------------------------
    # Reporting
    # ---------------------------------------------------------------------------------

    def _reject(self, reason: str, message: str) -> None:
        """Count a rejected input and log it, at most once per LOG_THROTTLE_S per reason."""
        now = time.monotonic()
        with self._state_lock:
            self._stats.rejected[reason] += 1
            last, suppressed = self._throttle.get(reason, (-math.inf, 0))
            if now - last < LOG_THROTTLE_S:
                self._throttle[reason] = (last, suppressed + 1)
                return
            self._throttle[reason] = (now, 0)
        more = f" ({suppressed} more like this in the last {LOG_THROTTLE_S:.0f} s)" if suppressed else ""
        self.get_logger().warn(message + more)

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        with self._state_lock:
            stats = self._stats
            latencies, stats.latencies_ms = stats.latencies_ms, []
            received, processed, dropped = stats.received, stats.processed, stats.dropped
            rejected = dict(stats.rejected)
        last_time, last_received, last_processed = self._last_report
        self._last_report = (now, received, processed)
        elapsed = max(now - last_time, 1e-6)
        target = self._target
        state = self._tracker.state.value if self._tracker is not None and target is not None else "idle"

        status = DiagnosticStatus()
        status.name = f"{self.get_fully_qualified_name()}: tracking"
        status.hardware_id = self._device_name
        if self._tracker is None:
            status.level, status.message = DiagnosticStatus.ERROR, self._unavailable
        elif received == last_received:
            status.level, status.message = DiagnosticStatus.WARN, "no images received"
        else:
            status.level, status.message = DiagnosticStatus.OK, state
        entries = {
            "state": state,
            "target_id": target.target_id if target else "",
            "input_rate_hz": f"{(received - last_received) / elapsed:.2f}",
            "processed_rate_hz": f"{(processed - last_processed) / elapsed:.2f}",
            "frames_received": str(received),
            "frames_processed": str(processed),
            "frames_dropped": str(dropped),
            "latency_ms_mean": f"{np.mean(latencies):.1f}" if latencies else "",
            "latency_ms_max": f"{np.max(latencies):.1f}" if latencies else "",
            "device": status.hardware_id,
            "model": self._model_name,
        }
        for reason in (
            "unsupported_encoding", "truncated_data", "empty_image", "invalid_frame", "tracker_error",
            "selection_no_model", "selection_no_image", "selection_invalid_box",
        ):
            entries[f"rejected_{reason}"] = str(rejected.get(reason, 0))
        status.values = [KeyValue(key=key, value=value) for key, value in entries.items()]
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [status]
        self._diagnostics_pub.publish(array)

    def destroy_node(self) -> None:
        self._frames.close()
        if self._worker.is_alive():
            self._worker.join(timeout=10.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Run the node until Ctrl-C or shutdown; exit status 1 on a configuration error."""
    rclpy.init(args=args)
    node = None
    status = 0
    try:
        node = TrackerNode()
        executor = MultiThreadedExecutor(num_threads=4)
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ConfigurationError as exc:
        get_logger(NODE_NAME).fatal(str(exc))
        status = 1
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return status


if __name__ == "__main__":
    sys.exit(main())
