"""The ``siammask_tracker`` lifecycle node: SiamMask on a camera stream, several targets.

Lifecycle (rclpy LifecycleNode; with ``autostart`` true, the default, the node configures
and activates itself so ``ros2 launch`` needs no lifecycle manager):
- configure loads the model (a bad weights path or device fails configure, with the
  reason in the log) and creates the publishers;
- activate subscribes to the inputs and starts the inference worker;
- deactivate unsubscribes, stops the worker and forgets the targets;
- cleanup frees the model (and its GPU memory).

Threads: the image callback only converts the message and stores it as the newest frame
(``frames.FrameStore``); the worker thread tracks every target on the newest frame in one
batched step (``targets.TargetSession``) and publishes (``outputs.OutputPublishers``).
Selections, detections, stops and parameters run in other callback groups of a
MultiThreadedExecutor; one lock keeps them and the worker's step-and-publish apart, so
nothing is published for a target after the reply that stopped or replaced it.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.logging import get_logger
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_srvs.srv import Trigger
from vision_msgs.msg import Detection2DArray

from siammask_ros.io.compressed import CompressedImageError, decode_compressed
from siammask_ros.model import CheckpointError, build_siammask, default_weights_path
from siammask_ros.model.backends import make_backend
from siammask_ros.ros.conversions import ImageConversionError, InvalidSelectionError, bbox_to_xywh, image_to_array
from siammask_ros.ros.diagnostics import NodeStats, diagnostic_status
from siammask_ros.ros.frames import Frame, FrameStore
from siammask_ros.ros.outputs import OutputPublishers
from siammask_ros.ros.params import (
    PARAMETERS,
    PRESET_PARAMETERS,
    coerce_integer,
    preset_defaults,
    target_policy,
    tracker_config,
    validate_choices,
)
from siammask_ros.ros.spatial import CameraModel, DepthConversionError, TargetLocation, depth_to_metres, locate_target
from siammask_ros.ros.sync import StampedBuffer, describe_offset, stamp_to_ns
from siammask_ros.ros.targets import Action, OfferedDetection, SelectionRefused, TargetReport, TargetSession
from siammask_ros.ros.transport import TransportLossCounter
from siammask_ros.srv import SelectTarget, StopTarget
from siammask_ros.tracker import InvalidBoxError, InvalidFrameError, MultiTargetTracker, TrackState

__all__ = ["ConfigurationError", "TrackerNode", "main"]

NODE_NAME = "siammask_tracker"
DIAGNOSTICS_PERIOD_S = 1.0
SENSOR_BUFFER = 30  # depth images and camera_infos kept for stamp matching
#: The interpreter's GIL switch interval while the torch backend runs (Python's default:
#: 5 ms). A torch step is some 150 Python-level layer calls, and each can wait a whole
#: interval for the GIL while the executor threads take in 30 Hz images.
#: scripts/measure_latency.sh, one target, 640x480, this project's 2-core VM, three
#: alternating rounds: 5.5-5.7 Hz processed (p50 198-206 ms) at 5 ms, 6.6-7.2 Hz (p50
#: 162-171 ms) at 1 ms. onnxruntime makes one call per graph and keeps the default (16.2 Hz
#: at 5 ms, 13.7 Hz at 1 ms). Process-wide, like cpu_threads.
TORCH_SWITCH_INTERVAL_S = 0.001
_DEFAULT_SWITCH_INTERVAL_S = sys.getswitchinterval()
_NO_MODEL_HINT = (
    "no model: the `weights` parameter is empty and no default model is bundled with this "
    "installation; restart the node with weights:=/path/to/SiamMask_VOT.pth (and the matching preset)"
)


class ConfigurationError(RuntimeError):
    """A parameter value the node cannot start with; the message names it."""


class TrackerNode(LifecycleNode):
    """SiamMask tracking on ``image``; see the module docstring and README for the interface.

    Raises:
        ConfigurationError: a parameter override of the wrong type or an unknown preset.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._values = self._declare_parameters()
        self._lock = threading.Lock()  # the session: selections, detections, stops, steps and their publishing
        self._stats = NodeStats()
        self._session: TargetSession | None = None
        self._outputs: OutputPublishers | None = None
        self._frames: FrameStore | None = None
        self._worker: threading.Thread | None = None
        self._subscriptions: list = []
        self._pending: dict[str, Any] = {}
        self._unavailable = ""
        self._model_name = self._device_name = "none"
        self._arch: str | None = None  # the loaded network's, for its tracker defaults
        self._lifecycle_label = "unconfigured"
        self._seq = 0
        self._image_format: tuple | None = None
        self._states: dict[str, TrackState] = {}
        self._depth: StampedBuffer[Image] = StampedBuffer(SENSOR_BUFFER)
        self._camera_info: StampedBuffer[CameraInfo] = StampedBuffer(SENSOR_BUFFER)
        self._transport = TransportLossCounter()
        self.configure_error = ""  # why the last configure failed

        self._control = MutuallyExclusiveCallbackGroup()
        self._select_srv = self.create_service(
            SelectTarget, "~/select_target", self._on_select_target, callback_group=self._control
        )
        self._stop_srv = self.create_service(Trigger, "~/stop", self._on_stop, callback_group=self._control)
        self._stop_target_srv = self.create_service(
            StopTarget, "~/stop_target", self._on_stop_target, callback_group=self._control
        )
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        if hasattr(self, "add_pre_set_parameters_callback"):  # Iron and newer; Humble refuses integers for floats
            self.add_pre_set_parameters_callback(self._coerce_parameters)
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # ---------------------------------------------------------------------------------
    # Parameters
    # ---------------------------------------------------------------------------------

    def _declare_parameters(self) -> dict[str, Any]:
        """Declare every parameter; integer overrides of float ones (``lr:=1``) become floats."""
        for name, override in list(self._parameter_overrides.items()):
            value = coerce_integer(name, override.value)
            if value is not override.value:
                self._parameter_overrides[name] = Parameter(name, Parameter.Type.DOUBLE, value)
        values: dict[str, Any] = {}
        try:
            for spec in PARAMETERS:
                if spec.name not in PRESET_PARAMETERS:
                    values[spec.name] = self.declare_parameter(spec.name, spec.default, spec.descriptor()).value
            try:
                defaults = preset_defaults(values["preset"])
            except ValueError as exc:
                raise ConfigurationError(str(exc)) from exc
            for spec in PARAMETERS:
                if spec.name in PRESET_PARAMETERS:
                    values[spec.name] = self.declare_parameter(spec.name, defaults[spec.name], spec.descriptor()).value
        except ParameterException as exc:
            raise ConfigurationError(f"invalid parameter: {exc}") from exc
        return values

    def _coerce_parameters(self, parameters: list[Parameter]) -> list[Parameter]:
        coerced = []
        for p in parameters:
            value = coerce_integer(p.name, p.value)
            coerced.append(p if value is p.value else Parameter(p.name, Parameter.Type.DOUBLE, value))
        return coerced

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        candidate = dict(self._values)
        candidate.update({p.name: coerce_integer(p.name, p.value) for p in parameters})
        try:
            validate_choices(candidate)
            config, policy = tracker_config(candidate, self._arch), target_policy(candidate)
        except (ValueError, TypeError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        with self._lock:
            self._values = candidate
            self._pending = {"config": config, "policy": policy}
            if self._frames is not None:
                self._frames.resize(candidate["frame_buffer_size"], candidate["frame_buffer_mb"] << 20)
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------------------------
    # Lifecycle
    # ---------------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the model and create the publishers; FAILURE (reason logged) if unusable."""
        try:
            validate_choices(self._values)
            config, policy = tracker_config(self._values), target_policy(self._values)
            tracker = self._load_tracker(config)
        except (ConfigurationError, ValueError) as exc:
            self.configure_error = str(exc)
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._session = TargetSession(tracker, policy) if tracker is not None else None
        self._outputs = OutputPublishers(self)
        self._lifecycle_label = "inactive"
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe to the inputs and start the inference worker."""
        self._frames = FrameStore(self._values["frame_buffer_size"], self._values["frame_buffer_mb"] << 20)
        self._subscribe()
        self._worker = threading.Thread(target=self._work, name="siammask_inference", daemon=True)
        self._worker.start()
        self._lifecycle_label = "active"
        self.get_logger().info(
            f"active: images from '{self._image_topic}' ({self._values['image_transport']}), model "
            f"{self._model_name} ({self._values['backend']}) on {self._device_name} "
            f"(torch CPU threads: {torch.get_num_threads()}), "
            f"preset {self._values['preset']}; select targets with {self.get_fully_qualified_name()}/select_target "
            f"or on {self.get_fully_qualified_name()}/targets"
        )
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe, stop the worker and forget the targets."""
        self._stop_worker()
        with self._lock:
            if self._session is not None:
                self._session.stop_all()
            self._states.clear()
        self._lifecycle_label = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Free the model and the publishers."""
        self._release()
        self._lifecycle_label = "unconfigured"
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        self._release()
        self._lifecycle_label = "finalized"
        return super().on_shutdown(state)

    def _load_tracker(self, config) -> MultiTargetTracker | None:
        if self._values["cpu_threads"] > 0:
            torch.set_num_threads(self._values["cpu_threads"])
        weights = self._values["weights"] or default_weights_path()
        if weights is None:
            self._unavailable = _NO_MODEL_HINT
            self.get_logger().error(self._unavailable)
            return None
        device = self._values["device"]
        try:
            model = build_siammask(arch=None, weights=str(weights), device=device, optimize=True)
        except (CheckpointError, ValueError, RuntimeError) as exc:  # unreadable file, unknown arch, device
            raise ConfigurationError(f"cannot run weights {str(weights)!r} on device {device!r}: {exc}") from exc
        name = self._values["backend"]
        sizes = [config.instance_size] + ([config.long_term.search_size] if config.long_term.enabled else [])
        try:  # also warms up every search size, so the first selection and the first LOST frame are not slow
            backend = make_backend(name, model, "", sizes, device=device, threads=self._values["cpu_threads"] or None,
                                   precision=self._values["precision"])
        except (ImportError, ValueError, RuntimeError) as exc:  # onnxruntime missing, or without the device
            raise ConfigurationError(f"cannot run the {name} backend on device {device!r}: {exc}") from exc
        self._arch = getattr(model, "arch", None)
        sys.setswitchinterval(TORCH_SWITCH_INTERVAL_S if name == "torch" else _DEFAULT_SWITCH_INTERVAL_S)
        # Now that the architecture is known, its defaults apply (rotated_box.fallback and .extent auto).
        tracker = MultiTargetTracker(backend, tracker_config(self._values, self._arch))
        self._model_name, self._device_name = str(weights), str(tracker.device)
        return tracker

    def _release(self) -> None:
        with self._lock:
            self._session = None
        if self._outputs is not None:
            self._outputs.destroy()
            self._outputs = None
        self._model_name = self._device_name = "none"
        self._arch = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _subscribe(self) -> None:
        reliable = self._values["qos.reliability"] == "reliable"
        image_qos = QoSProfile(
            depth=self._values["qos.depth"],
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
            history=HistoryPolicy.KEEP_LAST,
        )
        compressed = self._values["image_transport"] == "compressed"
        images, sensors = MutuallyExclusiveCallbackGroup(), MutuallyExclusiveCallbackGroup()
        image_sub = self.create_subscription(
            CompressedImage if compressed else Image, "image",
            self._on_compressed if compressed else self._on_image, image_qos, callback_group=images,
        )
        self._image_topic = image_sub.topic_name
        self._subscriptions = [
            image_sub,
            self.create_subscription(Image, "depth", self._on_depth, qos_profile_sensor_data, callback_group=sensors),
            self.create_subscription(
                CameraInfo, "camera_info", self._on_camera_info, qos_profile_sensor_data, callback_group=sensors
            ),
            self.create_subscription(Detection2DArray, "~/targets", self._on_targets, 10, callback_group=self._control),
        ]

    def _stop_worker(self) -> None:
        for subscription in self._subscriptions:
            self.destroy_subscription(subscription)
        self._subscriptions = []
        if self._frames is not None:
            self._frames.close()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=30.0)
        self._worker = None

    @property
    def _active(self) -> bool:
        return self._lifecycle_label == "active"

    # ---------------------------------------------------------------------------------
    # Inputs
    # ---------------------------------------------------------------------------------

    _image_topic = "image"

    def _on_image(self, msg: Image, info: dict) -> None:
        try:
            image, color_order = image_to_array(msg)
        except ImageConversionError as exc:
            self._receive(None, info)
            self._reject(exc.reason, f"ignoring image on '{self._image_topic}': {exc}")
            return
        self._receive(Frame(0, msg.header, image, color_order, time.monotonic()), info, msg.encoding)

    def _on_compressed(self, msg: CompressedImage, info: dict) -> None:
        try:
            image, color_order = decode_compressed(msg.format, msg.data)
        except CompressedImageError as exc:
            self._receive(None, info)
            self._reject(exc.reason, f"ignoring compressed image on '{self._image_topic}': {exc}")
            return
        self._receive(Frame(0, msg.header, image, color_order, time.monotonic()), info, msg.format)

    def _receive(self, frame: Frame | None, info: dict, encoding: str = "") -> None:
        """Count a received image (and transport losses before it); store a usable one."""
        self._stats.add("received")
        self._transport.observe(info)
        if frame is None or self._frames is None:
            return
        self._note_format(frame, encoding)
        self._seq += 1  # only the image callback's (mutually exclusive) group writes it
        if self._frames.put(frame._replace(seq=self._seq)):
            self._stats.add("dropped")

    def _note_format(self, frame: Frame, encoding: str) -> None:
        image_format = (frame.image.shape, encoding)
        if self._image_format is not None and image_format != self._image_format and self._states:
            self._stats.add("image_format_changes")
            self.get_logger().warn(
                f"image format changed while tracking: {self._image_format[1]} {self._image_format[0]} -> "
                f"{encoding} {frame.image.shape}; boxes are rescaled to the new size"
            )
        self._image_format = image_format

    def _on_depth(self, msg: Image) -> None:
        self._depth.add(stamp_to_ns(msg.header.stamp), msg)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info.add(stamp_to_ns(msg.header.stamp), msg)

    def _on_select_target(self, request: SelectTarget.Request, response: SelectTarget.Response):
        ok, message, target_id = self._select(request)
        response.success, response.message, response.target_id = ok, message, target_id
        return response

    def _select(self, request: SelectTarget.Request) -> tuple[bool, str, str]:
        """Start tracking ``request.box``; (success, message, target id). Never raises for bad input."""
        frame, where = self._selection_frame(request)
        if frame is None:
            return False, where, ""
        try:
            box_xywh = bbox_to_xywh(request.box, frame.image.shape[1], frame.image.shape[0])
            with self._lock:
                if self._session is None:
                    return self._refuse("selection_no_model", self._unavailable or "no model loaded")
                target_id, replaced = self._session.start(
                    frame.image, frame.color_order, frame.seq, box_xywh, request.target_id, request.class_id
                )
                self._states[target_id] = TrackState.TRACKING
        except (InvalidSelectionError, InvalidBoxError, InvalidFrameError) as exc:
            return self._refuse("selection_invalid_box", f"unusable box: {exc}")
        except SelectionRefused as exc:
            return self._refuse("selection_refused", str(exc))
        except (RuntimeError, MemoryError) as exc:  # out of (GPU) memory, cuDNN, "no kernel image", ...
            return self._refuse("selection_failed", f"could not start tracking: {type(exc).__name__}: {exc}")
        x, y, w, h = box_xywh
        verb = "re-initialised" if replaced else "tracking"
        message = f"{verb} {target_id} from box x={x:.1f} y={y:.1f} w={w:.1f} h={h:.1f} on {where}"
        self.get_logger().info(message)
        return True, message, target_id

    def _selection_frame(self, request: SelectTarget.Request) -> tuple[Frame | None, str]:
        """The frame a selection starts on and how to name it, or (None, the refusal)."""
        if not self._active or self._frames is None:
            return None, self._refuse("selection_inactive", f"the node is {self._lifecycle_label}, not active")[1]
        if request.image.width or request.image.height or len(request.image.data):
            try:
                image, color_order = image_to_array(request.image)
            except ImageConversionError as exc:
                return None, self._refuse("selection_invalid_box", f"unusable image in the request: {exc}")[1]
            newest = self._frames.newest()
            seq = newest.seq if newest is not None else 0
            frame = Frame(seq, request.image.header, image, color_order, time.monotonic())
            return frame, f"the image sent with the request (stamped {frame.stamp})"
        stamp = (int(request.stamp.sec), int(request.stamp.nanosec))
        lookup = self._frames.find(stamp)
        if lookup.count == 0:
            return None, self._refuse("selection_no_image", f"no image received yet on '{self._image_topic}'")[1]
        if lookup.frame is not None:
            return lookup.frame, f"the frame stamped {lookup.frame.stamp}"
        if self._values["selection.fallback_to_newest"]:
            newest = self._frames.newest()
            return newest, f"the newest frame (stamped {newest.stamp}): no buffered frame has stamp {stamp}"
        return None, self._refuse(
            "selection_stale_stamp",
            f"no buffered image has stamp {stamp}; {lookup.describe_range()} (send the image with the "
            f"request, or set selection.fallback_to_newest to start on the newest image)",
        )[1]

    def _on_targets(self, msg: Detection2DArray) -> None:
        """Detections (from a detector or a person): start new targets, re-acquire known ones."""
        if not self._active or self._frames is None or not msg.detections:
            return
        stamp = (int(msg.header.stamp.sec), int(msg.header.stamp.nanosec))
        lookup = self._frames.find(stamp)
        if lookup.frame is None:
            self._reject("detection_stale_stamp", f"detections stamped {stamp} ignored: {lookup.describe_range()}")
            return
        frame = lookup.frame
        offered = []
        for detection in msg.detections:
            try:
                box = bbox_to_xywh(detection.bbox, frame.image.shape[1], frame.image.shape[0])
            except InvalidSelectionError as exc:
                self._reject("detection_refused", f"detection {detection.id!r} ignored: {exc}")
                continue
            class_id = detection.results[0].hypothesis.class_id if detection.results else ""
            offered.append(OfferedDetection(box, detection.id, class_id))
        with self._lock:
            if self._session is None:
                self._reject("selection_no_model", self._unavailable or "no model loaded")
                return
            try:
                decisions = self._session.offer(frame.image, frame.color_order, frame.seq, offered)
            except (RuntimeError, MemoryError) as exc:
                self._reject(
                    "detection_failed", f"detections on frame {frame.stamp} not applied: {type(exc).__name__}: {exc}"
                )
                return
            for decision in decisions:
                self._stats.add(f"detections_{decision.action.value}")
                if decision.action in (Action.STARTED, Action.REINITIALISED):
                    self._states[decision.target_id] = TrackState.TRACKING
                    self.get_logger().info(
                        f"{decision.action.value} {decision.target_id} from ~/targets on frame {frame.stamp}"
                    )
                elif decision.action is Action.REFUSED:
                    who = decision.target_id or "a new target"
                    self._reject("detection_refused", f"detection for {who} refused: {decision.message}")

    def _on_stop(self, request: Trigger.Request, response: Trigger.Response):
        with self._lock:
            stopped = self._session.stop_all() if self._session is not None else []
            self._states.clear()
        response.success = True
        response.message = f"stopped tracking {', '.join(stopped)}" if stopped else "already idle"
        self.get_logger().info(response.message)
        return response

    def _on_stop_target(self, request: StopTarget.Request, response: StopTarget.Response):
        if not request.target_id:
            stopped = self._on_stop(Trigger.Request(), Trigger.Response())
            response.success, response.message = stopped.success, stopped.message
            return response
        with self._lock:
            try:
                if self._session is None:
                    raise KeyError(f"no target with id {request.target_id!r} (no model loaded)")
                self._session.stop(request.target_id)
                self._states.pop(request.target_id, None)
                response.success, response.message = True, f"stopped tracking {request.target_id}"
            except KeyError as exc:
                response.success, response.message = False, exc.args[0]
        self.get_logger().info(response.message)
        return response

    # ---------------------------------------------------------------------------------
    # Inference worker
    # ---------------------------------------------------------------------------------

    def _work(self) -> None:
        frames = self._frames
        while (frame := frames.take()) is not None:
            try:
                self._process(frame)
            except Exception as exc:  # the worker must survive anything one frame does
                if not self.context.ok():
                    return  # shutting down: publishers are gone
                message = f"tracking failed on the frame stamped {frame.stamp}: {type(exc).__name__}: {exc}"
                self._stats.error(message)
                self._reject("tracker_error", message)

    def _process(self, frame: Frame) -> None:
        with self._lock:
            session, outputs = self._session, self._outputs
            if outputs is None:
                return
            self._apply_pending(session)
            reports: list[TargetReport] = []
            if session is not None and len(session):
                now_ns = stamp_to_ns(frame.header.stamp) or time.monotonic_ns()
                try:
                    reports = session.step(frame.image, frame.color_order, frame.seq, now_ns)
                except InvalidFrameError as exc:
                    self._reject("invalid_frame", f"cannot track on the image stamped {frame.stamp}: {exc}")
                    return
            self._stats.add("processed")
            self._log_transitions(reports)
            locations = self._locate(frame, reports)
            latency_ms = (time.monotonic() - frame.received) * 1000.0
            self._stats.latency(latency_ms)
            outputs.publish(frame, reports, locations, latency_ms, self._values)

    def _apply_pending(self, session: TargetSession | None) -> None:
        pending, self._pending = self._pending, {}
        if session is not None and pending:
            session.tracker.config = pending["config"]
            session.policy = pending["policy"]

    def _log_transitions(self, reports: list[TargetReport]) -> None:
        """One log line per state change of a target (TRACKING, LOST, IDLE with the reason)."""
        for report in reports:
            before = self._states.get(report.target_id)
            if report.state is TrackState.IDLE:
                self._states.pop(report.target_id, None)
                was = before.name if before else "?"
                self.get_logger().warn(f"target {report.target_id}: {was} -> IDLE: {report.reason}")
            elif report.state is not before:
                self._states[report.target_id] = report.state
                self.get_logger().info(
                    f"target {report.target_id}: {before.name if before else 'new'} -> {report.state.name} "
                    f"(confidence {report.result.confidence:.3f}, search {report.result.search_size})"
                )

    def _locate(self, frame: Frame, reports: list[TargetReport]) -> dict[str, TargetLocation]:
        """3-D position and bearing of each tracked target, from depth and camera_info
        matched to the frame by stamp; {} when there is no camera_info."""
        if not reports or len(self._camera_info) == 0:
            return {}
        stamp = stamp_to_ns(frame.header.stamp)
        tolerance = int(self._values["depth.sync_tolerance"] * 1e9)
        info = self._camera_info.closest(stamp)
        if info is None or not info.within(tolerance):
            why = describe_offset("camera_info", info.offset_ns, tolerance) if info else "no camera_info"
            self._reject("depth_unmatched", why)
            return {}
        try:
            camera = CameraModel.from_camera_info(info.item)
            depth_m = self._matched_depth(stamp, tolerance)
        except DepthConversionError as exc:
            self._reject("depth_invalid", f"depth image ignored: {exc}")
            depth_m = None
        except ValueError as exc:
            self._reject("camera_info_invalid", f"camera_info ignored: {exc}")
            return {}
        locations = {}
        for report in reports:
            if report.result is None or report.state is TrackState.IDLE:
                continue
            box = report.result.rotated_box
            try:
                locations[report.target_id] = locate_target(camera, depth_m, report.result.mask, (box.cx, box.cy))
            except ValueError as exc:
                self._reject("depth_invalid", f"no 3-D position for {report.target_id}: {exc}")
        return locations

    def _matched_depth(self, stamp: int, tolerance: int):
        if len(self._depth) == 0:
            return None
        match = self._depth.closest(stamp)
        if match is None or not match.within(tolerance):
            why = describe_offset("depth", match.offset_ns, tolerance) if match else "no depth"
            self._reject("depth_unmatched", why)
            return None
        return depth_to_metres(match.item)

    # ---------------------------------------------------------------------------------
    # Reporting
    # ---------------------------------------------------------------------------------

    def _refuse(self, reason: str, message: str) -> tuple[bool, str, str]:
        self._reject(reason, f"selection refused: {message}")
        return False, message, ""

    def _reject(self, reason: str, message: str) -> None:
        """Count a rejected input and log it (throttled per reason)."""
        line = self._stats.reject(reason, message)
        if line is not None:
            self.get_logger().warn(line)

    def _state_summary(self) -> str:
        if not self._active:
            return self._lifecycle_label
        states = list(self._states.values())
        if not states:
            return "idle"
        lost = states.count(TrackState.LOST)
        return f"tracking {len(states)} target(s)" + (f", {lost} lost" if lost else "")

    def _publish_diagnostics(self) -> None:
        report = self._stats.take_report()
        fatal = self._unavailable if self._active else ""
        extra = {
            "lifecycle_state": self._lifecycle_label,
            "targets": ", ".join(f"{k}:{v.value}" for k, v in list(self._states.items())),
            "device": self._device_name,
            "model": self._model_name,
            "frames_missed_before_node": _count_or_unknown(self._transport.missed),
            "frame_buffer_bytes": str(self._frames.buffered_bytes if self._frames else 0),
        }
        status = diagnostic_status(
            f"{self.get_fully_qualified_name()}: tracking", self._device_name, report, self._state_summary(), fatal,
            extra,
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array)

    def destroy_node(self) -> None:
        self._stop_worker()
        super().destroy_node()


def _count_or_unknown(count: int | None) -> str:
    return "unknown" if count is None else str(count)


def main(args: list[str] | None = None) -> int:
    """Run the node until Ctrl-C or shutdown; exit status 1 when it cannot configure at start-up."""
    rclpy.init(args=args)
    node = None
    status = 0
    try:
        node = TrackerNode()
        if node.get_parameter("autostart").value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise ConfigurationError(node.configure_error or "configure failed")
            node.trigger_activate()
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
