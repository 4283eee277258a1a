"""The SiamMask network and its checkpoint files (torch only, no ROS)."""

from .inference import fold_batchnorm, optimize_for_inference
from .mobilenet import DEFAULT_ARCH, default_weights_path
from .siammask import ARCHITECTURES, SearchOutput, SiamMask, build_siammask, resolve_device
from .weights import (
    Checkpoint,
    CheckpointError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    CorruptCheckpointError,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    to_layout,
    to_native,
)

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_ARCH",
    "Checkpoint",
    "CheckpointError",
    "CheckpointMismatchError",
    "CheckpointNotFoundError",
    "CorruptCheckpointError",
    "SearchOutput",
    "SiamMask",
    "build_siammask",
    "default_weights_path",
    "fold_batchnorm",
    "load_checkpoint",
    "load_weights",
    "optimize_for_inference",
    "resolve_device",
    "save_checkpoint",
    "to_layout",
    "to_native",
]
