"""The node's parameters: one table of names, defaults, descriptions and limits.

Imports message classes only (no rclpy), so the table can be checked against
``config/tracker.yaml`` without a middleware. ``preset`` sets the defaults of the four
parameters in ``PRESET_PARAMETERS``; a value given for one of those overrides the preset.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from siammask_ros.ros.targets import TargetPolicy
from siammask_ros.tracker.config import (
    DEFAULT_BOX_FALLBACK_AREA_RATIO,
    PRESETS,
    ROTATED_BOX_EXTENTS,
    LongTermConfig,
    TrackerConfig,
    box_fallback_for,
    preset,
    rotated_box_extent_for,
)

__all__ = [
    "FLOAT_PARAMETERS",
    "PARAMETERS",
    "PARAMETER_NAMES",
    "PRESET_PARAMETERS",
    "ParamSpec",
    "RUNTIME_PARAMETERS",
    "coerce_integer",
    "preset_defaults",
    "target_policy",
    "tracker_config",
    "validate_choices",
]

Value = Union[bool, int, float, str]

_LONG_TERM = LongTermConfig()


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: what it means, its default and the values it accepts.

    ``default`` is None for the preset-derived parameters, whose default depends on
    ``preset``. ``choices`` lists the accepted strings (published as
    ``additional_constraints`` and checked by ``validate_choices``); ``pattern`` does the
    same for open-ended strings such as ``cuda:N``.
    """

    name: str
    default: Value | None
    description: str
    read_only: bool = False
    choices: tuple[str, ...] = ()
    pattern: str = ""
    constraints: str = ""
    float_range: tuple[float, float] | None = None
    int_range: tuple[int, int, int] | None = None  # from, to, step

    @property
    def is_float(self) -> bool:
        """A floating-point parameter, which also takes integer values (``lr:=1``)."""
        return self.float_range is not None or isinstance(self.default, float)

    def descriptor(self) -> ParameterDescriptor:
        descriptor = ParameterDescriptor(
            name=self.name, description=self.description, read_only=self.read_only
        )
        if self.choices:
            descriptor.additional_constraints = "one of: " + ", ".join(self.choices)
        elif self.constraints:
            descriptor.additional_constraints = self.constraints
        if self.float_range is not None:
            low, high = self.float_range
            descriptor.floating_point_range = [FloatingPointRange(from_value=low, to_value=high, step=0.0)]
        if self.int_range is not None:
            low, high, step = self.int_range
            descriptor.integer_range = [IntegerRange(from_value=low, to_value=high, step=step)]
        return descriptor


#: ROS parameter name -> TrackerConfig field, for the parameters whose defaults come from ``preset``.
PRESET_PARAMETERS: dict[str, str] = {
    "seg_threshold": "seg_thr",
    "penalty_k": "penalty_k",
    "window_influence": "window_influence",
    "lr": "lr",
}

PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "weights", "",
        "SiamMask checkpoint (.pth: this package's, the published SiamMask_VOT/DAVIS or pysot "
        "layout); empty = the model bundled with the package. Needs a restart.",
        read_only=True,
    ),
    ParamSpec(
        "preset", "vot",
        "Tracking parameters matching the checkpoint; sets the defaults of seg_threshold, "
        "penalty_k, window_influence and lr. Needs a restart.",
        read_only=True, choices=tuple(sorted(PRESETS)),
    ),
    ParamSpec(
        "device", "auto",
        "Where the network runs: auto (CUDA when available), cpu, cuda or cuda:N. Needs a restart.",
        read_only=True, pattern=r"auto|cpu|cuda(:\d+)?", constraints="auto, cpu, cuda or cuda:N",
    ),
    ParamSpec(
        "backend", "torch",
        "What runs the network: torch, or onnxruntime (the model exported to ONNX at configure; "
        "TensorRT, CUDA or CPU provider, whichever is installed, in that order). Needs a restart.",
        read_only=True, choices=("torch", "onnxruntime"),
    ),
    ParamSpec(
        "cpu_threads", 0,
        "Torch CPU threads for the network (torch.set_num_threads, process-wide); 0 = one per "
        "core. Leave cores to the camera driver and other nodes: threads that wait on each "
        "other make a CPU step several times slower. Needs a restart.",
        read_only=True, int_range=(0, 256, 1),
    ),
    ParamSpec(
        "precision", "fp32",
        "Network precision (torch backend): fp32; fp16 (CUDA only, refused on the CPU); bf16 (CPU and "
        "CUDA). Weights and inputs in that dtype, tracker geometry stays float. onnxruntime: fp32 only. "
        "Needs a restart.",
        read_only=True, choices=("fp32", "fp16", "bf16"),
    ),
    ParamSpec(
        "autostart", True,
        "Configure and activate the lifecycle node at start-up (no lifecycle manager needed). "
        "False: wait for ~/change_state (configure loads the model, activate starts inference).",
        read_only=True,
    ),
    ParamSpec(
        "image_transport", "raw",
        "Input images: raw (sensor_msgs/Image on `image`) or compressed "
        "(sensor_msgs/CompressedImage jpeg/png on `image`: remap it to <camera topic>/compressed). "
        "Needs a restart.",
        read_only=True, choices=("raw", "compressed"),
    ),
    ParamSpec(
        "max_targets", 8,
        "Most targets tracked at once; selections beyond it are refused with the reason.",
        int_range=(1, 255, 1),
    ),
    ParamSpec(
        "seg_threshold", None,
        "Mask threshold on the refined mask's foreground probability.",
        float_range=(0.0, 1.0),
    ),
    ParamSpec(
        "penalty_k", None,
        "Scale/aspect-change penalty: higher values favour boxes like the previous one.",
        float_range=(0.0, 1.0),
    ),
    ParamSpec(
        "window_influence", None,
        "Weight of the cosine window (motion prior) against the network's score.",
        float_range=(0.0, 1.0),
    ),
    ParamSpec(
        "lr", None,
        "Rate at which the box size follows the network's estimate (1 = immediately).",
        float_range=(0.0, 1.0),
    ),
    # On by default on a robot, unlike the offline runner (published SiamMask behaviour).
    ParamSpec(
        "long_term.enabled", True,
        "Re-detection: while LOST, hold the state and search a long_term.search_size crop "
        "until the confidence rises above long_term.confidence_high. Off = published SiamMask.",
    ),
    ParamSpec(
        "long_term.confidence_low", _LONG_TERM.confidence_low,
        "The target is declared LOST when the confidence falls below this value "
        "(must be below long_term.confidence_high).",
        float_range=(0.0, 1.0),
    ),
    ParamSpec(
        "long_term.confidence_high", _LONG_TERM.confidence_high,
        "A LOST target counts as found again when the confidence rises above this value.",
        float_range=(0.0, 1.0),
    ),
    ParamSpec(
        "long_term.search_size", _LONG_TERM.search_size,
        "Side of the network's search crop while LOST (pixels at model scale; >= 255 with "
        "(size - 127) a multiple of 8).",
        int_range=(255, 1279, 8),
    ),
    ParamSpec(
        "long_term.wide_search_every", _LONG_TERM.wide_search_every,
        "While LOST, run the long_term.search_size search on every N-th frame only and the "
        "normal search around the held position in between (cheaper on a CPU). 1 = every frame.",
        int_range=(1, 30, 1),
    ),
    ParamSpec(
        "long_term.max_lost_duration", 0.0,
        "Give up on a target LOST for this many seconds (image time): it is reported IDLE "
        "with the reason and dropped. 0 = search forever.",
        float_range=(0.0, 86400.0),
    ),
    ParamSpec(
        "rotated_box.fallback", "auto",
        "Publish the box branch's axis-aligned box instead of the mask's rotated box where their "
        "areas disagree (the smaller below rotated_box.fallback_area_ratio of the larger, for the "
        "mask box and for its upright hull alike: a mask spilling onto a neighbour, or a fragment "
        "of the target; a correctly turned box agrees one way or the other): on, off (published "
        "SiamMask), or "
        "auto = on for the bundled model, off for the published ResNet-50.",
        choices=("auto", "on", "off"),
    ),
    ParamSpec(
        "rotated_box.fallback_area_ratio", DEFAULT_BOX_FALLBACK_AREA_RATIO,
        "Area ratio below which the rotated box falls back (see rotated_box.fallback).",
        float_range=(0.0, 1.0),
    ),
    ParamSpec(
        "rotated_box.extent", "auto",
        "Where the rotated box's size comes from: mask (the mask's minimum-area rectangle, "
        "published SiamMask), box_branch (that rectangle's shape and angle, centred on the "
        "tracking state and scaled so its upright hull has the box branch's area), or auto = "
        "box_branch for the bundled model, mask for the published ResNet-50.",
        choices=("auto", *ROTATED_BOX_EXTENTS),
    ),
    ParamSpec(
        "template_update.rate", 0.0,
        "After a frame with confidence of at least template_update.confidence, move the "
        "template this far towards the target's current look. 0 = off (published SiamMask).",
        float_range=(0.0, 1.0),
    ),
    ParamSpec(
        "template_update.confidence", 0.99,
        "Confidence a frame needs before it may update the template.",
        float_range=(0.0, 1.0),
    ),
    ParamSpec(
        "selection.fallback_to_newest", False,
        "A selection whose stamp is not buffered starts on the newest image instead of being "
        "refused. Off by default: the target may have moved since.",
    ),
    ParamSpec(
        "detections.reinit", "when_lost",
        "When a detection on ~/targets for a known target id re-initialises it: always, "
        "when_lost (only while LOST) or never (detections only start new targets).",
        choices=("always", "when_lost", "never"),
    ),
    ParamSpec(
        "detections.min_iou", 0.0,
        "With detections.reinit=always, a TRACKING target is re-initialised only by a "
        "detection overlapping its box by at least this IoU (0 = no gate).",
        float_range=(0.0, 1.0),
    ),
    ParamSpec(
        "detections.match_class", True,
        "A detection never re-initialises or continues a target of another class_id.",
    ),
    ParamSpec(
        "detections.associate_iou", 0.3,
        "A detection without an id continues the tracked target of its class it overlaps "
        "most, when that IoU reaches this value; otherwise it starts a new target.",
        float_range=(0.0, 1.0),
    ),
    ParamSpec(
        "depth.sync_tolerance", 0.05,
        "Largest stamp difference (s) between an image and the depth / camera_info used with it.",
        float_range=(0.0, 1.0),
    ),
    ParamSpec(
        "follow.target_id", "",
        "Target published on ~/target_pose (while TRACKING with a 3-D position); empty = the "
        "first TRACKING target.",
    ),
    ParamSpec(
        "qos.reliability", "best_effort",
        "Reliability of the image subscription: best_effort (sensor data) or reliable. Needs a restart.",
        read_only=True, choices=("best_effort", "reliable"),
    ),
    ParamSpec(
        "qos.depth", 1,
        "History depth of the image subscription (1 = only the newest frame). Needs a restart.",
        read_only=True, int_range=(1, 100, 1),
    ),
    ParamSpec(
        "frame_buffer_size", 30,
        "Number of recent frames kept so that a selection can start on the frame it was drawn on.",
        int_range=(1, 300, 1),
    ),
    ParamSpec(
        "frame_buffer_mb", 256,
        "Bound on the memory of those frames in MiB (the oldest go first; 30 4K frames are 750 MiB).",
        int_range=(1, 16384, 1),
    ),
    ParamSpec(
        "publish.mask", True,
        "Publish ~/mask: mono8 label image, each target's pixels hold its mask_label.",
    ),
    ParamSpec(
        "publish.debug_image", True,
        "Publish ~/debug_image (bgr8 overlay); drawn only while someone subscribes.",
    ),
)

PARAMETER_NAMES: tuple[str, ...] = tuple(spec.name for spec in PARAMETERS)
FLOAT_PARAMETERS: frozenset[str] = frozenset(spec.name for spec in PARAMETERS if spec.is_float)
RUNTIME_PARAMETERS: tuple[str, ...] = tuple(spec.name for spec in PARAMETERS if not spec.read_only)
_BY_NAME = {spec.name: spec for spec in PARAMETERS}


def preset_defaults(preset_name: str) -> dict[str, float]:
    """Values of ``PRESET_PARAMETERS`` under the named preset (ValueError if unknown)."""
    config = preset(preset_name)
    return {name: getattr(config, field) for name, field in PRESET_PARAMETERS.items()}


def validate_choices(values: Mapping[str, Any]) -> None:
    """Check string parameters against their ``choices``/``pattern``; ValueError names the bad one."""
    for name, value in values.items():
        spec = _BY_NAME.get(name)
        if spec is None:
            continue
        if spec.choices and value not in spec.choices:
            raise ValueError(f"{name} must be one of {', '.join(spec.choices)}; got {value!r}")
        if spec.pattern and not re.fullmatch(spec.pattern, str(value)):
            raise ValueError(f"{name} must be {spec.constraints}; got {value!r}")


def tracker_config(values: Mapping[str, Any], arch: str | None = None) -> TrackerConfig:
    """The TrackerConfig for a full set of parameter values and the network's ``arch``
    (None before the model is loaded: ``rotated_box.fallback`` auto counts as off and
    ``rotated_box.extent`` auto as mask).

    Validation is TrackerConfig's and LongTermConfig's own (including the cross-field rules
    confidence_low < confidence_high and the search size grid); ValueError names the value.
    """
    base = preset(values["preset"])
    changes: dict[str, Any] = {field: float(values[name]) for name, field in PRESET_PARAMETERS.items()}
    changes["long_term"] = {
        "enabled": bool(values["long_term.enabled"]),
        "confidence_low": float(values["long_term.confidence_low"]),
        "confidence_high": float(values["long_term.confidence_high"]),
        "search_size": int(values["long_term.search_size"]),
        "wide_search_every": int(values["long_term.wide_search_every"]),
    }
    changes["box_fallback_area_ratio"] = box_fallback_for(
        arch, values["rotated_box.fallback"], float(values["rotated_box.fallback_area_ratio"])
    )
    changes["rotated_box_extent"] = rotated_box_extent_for(arch, values["rotated_box.extent"])
    changes["template_update_rate"] = float(values["template_update.rate"])
    changes["template_update_confidence"] = float(values["template_update.confidence"])
    return base.with_changes(**changes)


def coerce_integer(name: str, value: Any) -> Any:
    """``value`` as a float when ``name`` is a float parameter given an integer (``lr:=1``,
    ``lr: 1`` in yaml); anything else unchanged (bools are not integers here)."""
    if name in FLOAT_PARAMETERS and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def target_policy(values: Mapping[str, Any]) -> TargetPolicy:
    """The TargetPolicy for a full set of parameter values (ValueError names the value)."""
    return TargetPolicy(
        max_targets=int(values["max_targets"]),
        max_lost_duration_s=float(values["long_term.max_lost_duration"]),
        reinit=values["detections.reinit"],
        reinit_min_iou=float(values["detections.min_iou"]),
        match_class=bool(values["detections.match_class"]),
        associate_iou=float(values["detections.associate_iou"]),
    )
