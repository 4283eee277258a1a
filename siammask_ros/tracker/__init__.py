"""The per-sequence SiamMask algorithm: numpy + OpenCV around the network, no ROS.

``SiamMaskTracker`` and ``MultiTargetTracker`` are imported on first use, so that modules
needing only the result types or the geometry (``io``, ``ros.conversions``) do not pull
in torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import PRESETS, LongTermConfig, TrackerConfig, preset
from .geometry import InvalidBoxError, InvalidFrameError, to_bgr, validate_box
from .result import RotatedBox, TrackResult, TrackState

if TYPE_CHECKING:
    from .multi import MultiTargetTracker
    from .tracker import SiamMaskTracker

__all__ = [
    "PRESETS",
    "InvalidBoxError",
    "InvalidFrameError",
    "LongTermConfig",
    "MultiTargetTracker",
    "RotatedBox",
    "SiamMaskTracker",
    "TrackResult",
    "TrackState",
    "TrackerConfig",
    "preset",
    "to_bgr",
    "validate_box",
]


def __getattr__(name: str) -> Any:
    if name == "SiamMaskTracker":
        from .tracker import SiamMaskTracker

        return SiamMaskTracker
    if name == "MultiTargetTracker":
        from .multi import MultiTargetTracker

        return MultiTargetTracker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
