"""Checkpoint files: reading, writing, and renaming between key layouts.

Three layouts name the same SiamMask tensors:

- ``native``: this package's module names (``backbone.``, ``neck.downsample.0``,
  ``rpn_head.cls.``, ``rpn_head.loc.``, ``mask_head.``, ``refine_head.``);
- ``published``: the reference release (``SiamMask_DAVIS.pth``, ...): ``features.features.``,
  ``features.downsample.downsample.``, ``rpn_model.``, ``mask_model.mask.``, ``refine_model.``;
- ``pysot``: pysot's ``siammask_r50_l3``, which differs from ``native`` only in its
  neck (``neck.downsample.downsample.``, a one-entry ``AdjustAllLayer``).

Files are read with ``torch.load(..., weights_only=True)``: tensors and plain data only,
never arbitrary pickled objects. The published and pysot files hold a bare state dict or
one under ``"state_dict"``, possibly with ``module.`` prefixes. This package's own files
are ``{"arch": str, "state_dict": <native>, "metadata": {...}}``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "LAYOUTS",
    "Checkpoint",
    "CheckpointError",
    "CheckpointMismatchError",
    "CheckpointNotFoundError",
    "CorruptCheckpointError",
    "describe_checkpoint",
    "detect_layout",
    "load_checkpoint",
    "load_weights",
    "save_checkpoint",
    "to_layout",
    "to_native",
]

#: Key prefix renames from the native layout, per layout (native prefixes do not nest).
_PREFIXES: dict[str, tuple[tuple[str, str], ...]] = {
    "native": (),
    "published": (
        ("backbone.", "features.features."),
        ("neck.", "features.downsample."),
        ("rpn_head.", "rpn_model."),
        ("mask_head.", "mask_model.mask."),
        ("refine_head.", "refine_model."),
    ),
    "pysot": (("neck.", "neck.downsample."),),
}
LAYOUTS: tuple[str, ...] = tuple(_PREFIXES)

#: Key prefixes that identify a layout, checked in this order.
_SIGNATURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("published", ("features.features.", "features.downsample.", "rpn_model.", "mask_model.", "refine_model.")),
    ("pysot", ("neck.downsample.downsample.",)),
    ("native", ("backbone.", "neck.", "rpn_head.", "mask_head.", "refine_head.")),
)
#: Architecture implied by a layout when the file does not record one.
_LAYOUT_ARCH = {"published": "siammask_r50", "pysot": "siammask_r50"}
_MODULE_PREFIX = "module."
_LISTED = 10


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path does not exist."""


class CorruptCheckpointError(CheckpointError):
    """The file is not a readable checkpoint (truncated, not PyTorch, unexpected content)."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint's tensors do not fit the model (missing, unexpected or mis-shaped keys)."""

    def __init__(
        self,
        message: str,
        missing: tuple[str, ...] = (),
        unexpected: tuple[str, ...] = (),
        mismatched: tuple[str, ...] = (),
        layout: str = "",
    ) -> None:
        super().__init__(message)
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched
        self.layout = layout


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint with its state dict renamed to the native layout.

    Attributes:
        arch: architecture name recorded in (or implied by the layout of) the file;
            ``None`` for a bare native-layout state dict.
        state_dict: tensors under native names, on the CPU.
        layout: the layout the file used: ``native``, ``published``, ``pysot`` or ``unknown``.
        metadata: plain data stored with the weights (empty for third-party files).
    """

    arch: str | None
    state_dict: dict[str, Tensor]
    layout: str
    metadata: dict[str, Any] = field(default_factory=dict)


def _check_layout(layout: str) -> None:
    if layout not in _PREFIXES:
        raise ValueError(f"unknown checkpoint layout {layout!r}; expected one of {', '.join(LAYOUTS)}")


def _rename(key: str, renames: tuple[tuple[str, str], ...]) -> str:
    for old, new in renames:
        if key.startswith(old):
            return new + key[len(old) :]
    return key


def detect_layout(keys: Iterable[str]) -> str:
    """The layout of state-dict keys (``module.`` already stripped), or ``"unknown"``."""
    keys = list(keys)
    for layout, prefixes in _SIGNATURES:
        if any(key.startswith(prefixes) for key in keys):
            return layout
    return "unknown"


def to_layout(state_dict: Mapping[str, Tensor], layout: str) -> dict[str, Tensor]:
    """Rename a native state dict's keys into ``layout``."""
    _check_layout(layout)
    return {_rename(key, _PREFIXES[layout]): value for key, value in state_dict.items()}


def to_native(state_dict: Mapping[str, Tensor], layout: str | None = None) -> dict[str, Tensor]:
    """Rename a state dict into the native layout; ``layout=None`` detects it."""
    layout = detect_layout(state_dict) if layout is None else layout
    if layout == "unknown":
        return dict(state_dict)
    _check_layout(layout)
    renames = tuple((new, old) for old, new in _PREFIXES[layout])
    return {_rename(key, renames): value for key, value in state_dict.items()}


def _read(path: Path) -> Any:
    if not path.exists():
        raise CheckpointNotFoundError(f"checkpoint file not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint path is not a file: {path}")
    try:
        f = path.open("rb")
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    with f:
        try:
            return torch.load(f, map_location="cpu", weights_only=True)
        except Exception as exc:  # undecodable bytes surface as many types, OSError included
            raise CorruptCheckpointError(
                f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {_summary(exc)})"
            ) from exc


def _summary(exc: Exception) -> str:
    """The gist of a torch.load failure, without its advice to disable ``weights_only``."""
    text = str(exc)
    unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if unsafe:
        return f"it pickles an object of type {unsafe.group(1)}; only tensors and plain data are loaded"
    detail = re.search(r"WeightsUnpickler error:\s*(.*?)\s*(?:Check the documentation|$)", text, re.DOTALL)
    if detail:
        return " ".join(detail.group(1).split()) or "undecodable pickle data"
    if isinstance(exc, EOFError):
        return text or "unexpected end of file"
    return text.split(". ")[0] or "no details"


def _unpack(obj: Any, path: Path) -> tuple[dict[str, Any], Mapping[str, Any]]:
    """Split the loaded object into (state dict without ``module.``, enclosing dict or {})."""
    if not isinstance(obj, Mapping):
        raise CorruptCheckpointError(f"{path} holds a {type(obj).__name__} object, not a state dict")
    container: Mapping[str, Any] = {}
    if "state_dict" in obj:
        container, obj = obj, obj["state_dict"]
        if not isinstance(obj, Mapping):
            raise CorruptCheckpointError(f"{path}: 'state_dict' has type {type(obj).__name__}, not dict")
    if not all(isinstance(key, str) for key in obj):
        raise CorruptCheckpointError(f"{path}: the state dict has non-string keys")
    state_dict = {key.removeprefix(_MODULE_PREFIX): value for key, value in obj.items()}
    for key, value in state_dict.items():
        if not isinstance(value, Tensor):
            raise CorruptCheckpointError(f"{path}: entry {key!r} has type {type(value).__name__}, not Tensor")
    return state_dict, container


def _native_record(container: Mapping[str, Any], path: Path) -> tuple[str | None, dict[str, Any]]:
    """The ``arch`` and ``metadata`` entries of this package's own format."""
    arch = container.get("arch")
    metadata = container.get("metadata", {})
    if arch is not None and not isinstance(arch, str):
        raise CorruptCheckpointError(f"{path}: 'arch' has type {type(arch).__name__}, not str")
    if not isinstance(metadata, Mapping):
        raise CorruptCheckpointError(f"{path}: 'metadata' has type {type(metadata).__name__}, not dict")
    return arch, dict(metadata)


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint in any supported layout onto the CPU.

    Raises:
        CheckpointNotFoundError: ``path`` does not exist.
        CorruptCheckpointError: the file cannot be decoded or does not hold a state dict.
    """
    path = Path(path)
    state_dict, container = _unpack(_read(path), path)
    layout = detect_layout(state_dict)
    if layout == "native":
        arch, metadata = _native_record(container, path)
    else:
        # Third-party training files carry their own 'arch' (e.g. SiamMask's "Custom"):
        # the key layout is what identifies the network.
        arch, metadata = _LAYOUT_ARCH.get(layout), {}
    return Checkpoint(arch=arch, state_dict=to_native(state_dict, layout), layout=layout, metadata=metadata)


def _listing(title: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:_LISTED])
    more = f" and {len(keys) - _LISTED} more" if len(keys) > _LISTED else ""
    return f"{title} ({len(keys)}): {shown}{more}"


def load_weights(model: nn.Module, checkpoint: Checkpoint | Mapping[str, Tensor]) -> None:
    """Copy a checkpoint into ``model``, requiring exactly its keys and shapes.

    A plain mapping is taken to be in the native layout.

    Raises:
        CheckpointMismatchError: any key is missing, unexpected or has the wrong shape; the
            message lists them under the names of the checkpoint's own layout.
    """
    if not isinstance(checkpoint, Checkpoint):
        checkpoint = Checkpoint(arch=None, state_dict=dict(checkpoint), layout="native")
    given = checkpoint.state_dict
    expected = model.state_dict()
    missing = [key for key in expected if key not in given]
    unexpected = [key for key in given if key not in expected]
    mismatched = [key for key in expected if key in given and given[key].shape != expected[key].shape]
    if missing or unexpected or mismatched:
        raise _mismatch_error(checkpoint, expected, missing, unexpected, mismatched)
    model.load_state_dict(given, strict=True)


def _mismatch_error(
    checkpoint: Checkpoint,
    expected: Mapping[str, Tensor],
    missing: list[str],
    unexpected: list[str],
    mismatched: list[str],
) -> CheckpointMismatchError:
    layout = checkpoint.layout
    renames = _PREFIXES.get(layout, ())

    def name(key: str) -> str:
        return _rename(key, renames)

    parts = [f"checkpoint does not fit the model (layout detected: {layout})"]
    if missing:
        parts.append(_listing("missing keys", [name(k) for k in missing]))
    if unexpected:
        parts.append(_listing("unexpected keys", [name(k) for k in unexpected]))
    if mismatched:
        shapes = [
            f"{name(k)} (checkpoint {list(checkpoint.state_dict[k].shape)}, model {list(expected[k].shape)})"
            for k in mismatched
        ]
        parts.append(_listing("keys with the wrong shape", shapes))
    return CheckpointMismatchError(
        "; ".join(parts),
        missing=tuple(map(name, missing)),
        unexpected=tuple(map(name, unexpected)),
        mismatched=tuple(map(name, mismatched)),
        layout=layout,
    )


def _check_plain(value: Any, where: str) -> None:
    """Metadata must survive ``weights_only`` loading: JSON-like data only."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"metadata key {key!r} at {where} is not a string")
            _check_plain(item, f"{where}.{key}")
        return
    raise ValueError(f"metadata value at {where} has type {type(value).__name__}; only plain data can be stored")


def save_checkpoint(
    model_or_state_dict: nn.Module | Mapping[str, Tensor],
    path: str | os.PathLike[str],
    arch: str = "siammask_r50",
    layout: str = "native",
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Write weights to ``path`` (atomically: a partial file never replaces a good one).

    ``layout="native"`` writes this package's format, ``{"arch", "state_dict",
    "metadata"}``. ``"published"`` and ``"pysot"`` write a bare state dict under those
    names, as the reference tools expect; they cannot carry ``metadata``.
    """
    _check_layout(layout)
    if layout != "native" and metadata:
        raise ValueError(f"metadata can only be stored in the native layout, not {layout!r}")
    metadata = dict(metadata or {})
    _check_plain(metadata, "metadata")
    if isinstance(model_or_state_dict, nn.Module):
        state_dict = model_or_state_dict.state_dict()
    else:
        state_dict = dict(model_or_state_dict)
    state_dict = {key: value.detach().cpu() for key, value in state_dict.items()}
    if layout == "native":
        payload: Any = {"arch": arch, "state_dict": state_dict, "metadata": metadata}
    else:
        payload = to_layout(state_dict, layout)

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def describe_checkpoint(path: str | os.PathLike[str]) -> str:
    """One line about a checkpoint: layout, architecture, tensor and parameter counts."""
    ckpt = load_checkpoint(path)
    numel = sum(t.numel() for t in ckpt.state_dict.values() if t.is_floating_point())
    arch = ckpt.arch or "unrecorded"
    return f"{path}: layout {ckpt.layout}, arch {arch}, {len(ckpt.state_dict)} tensors, {numel:,} values"
