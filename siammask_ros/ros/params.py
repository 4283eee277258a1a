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

from siammask_ros.tracker.config import PRESETS, LongTermConfig, TrackerConfig, preset

__all__ = [
    "PARAMETERS",
    "PARAMETER_NAMES",
    "PRESET_PARAMETERS",
    "ParamSpec",
    "RUNTIME_PARAMETERS",
    "preset_defaults",
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
        "cpu_threads", 0,
        "Torch CPU threads for the network (torch.set_num_threads, process-wide); 0 = one per "
        "core. Leave cores to the camera driver and other nodes: threads that wait on each "
        "other make a CPU step several times slower. Needs a restart.",
        read_only=True, int_range=(0, 256, 1),
    ),
    ParamSpec(
        "precision", "fp32",
        "Network precision. Only fp32 is implemented (fp16 on CUDA is planned). Needs a restart.",
        read_only=True, choices=("fp32",),
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
    ParamSpec("publish.mask", True, "Publish ~/mask (mono8, 0/255, image size)."),
    ParamSpec("publish.detection", True, "Publish ~/detection (vision_msgs/Detection2D, rotated box)."),
    ParamSpec(
        "publish.debug_image", True,
        "Publish ~/debug_image (bgr8 overlay); drawn only while someone subscribes.",
    ),
)

PARAMETER_NAMES: tuple[str, ...] = tuple(spec.name for spec in PARAMETERS)
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


def tracker_config(values: Mapping[str, Any]) -> TrackerConfig:
    """The TrackerConfig for a full set of parameter values.

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
    }
    return base.with_changes(**changes)
