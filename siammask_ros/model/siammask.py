"""The SiamMask network, assembled from injected parts, and its builder.

Tracking uses three calls and keeps all per-sequence state outside the module::

    z_feat = model.template(z)            # once per sequence, (B, 256, 7, 7)
    out = model.track(x, z_feat)          # every frame: cls, loc, mask_corr, skips
    logits = model.refine_mask(out, row, col)   # (B, 127, 127) at the chosen position
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .heads import AdjustLayer, DepthwiseCorrelation, Refine
from .inference import optimize_for_inference
from .mobilenet import siammask_mnv2
from .resnet import NormLayer, siammask_resnet50
from .weights import CheckpointMismatchError, load_checkpoint, load_weights

__all__ = [
    "ARCHITECTURES",
    "SearchOutput",
    "SiamMask",
    "build_siammask",
    "resolve_device",
    "siammask_r50",
    "use_fp32_numerics",
]


class SearchOutput(NamedTuple):
    """Everything ``track`` computes for one search crop (S = 25 for 255, 97 for 831).

    Attributes:
        cls: (B, 2A, S, S) logits, channels [background a0..a4, foreground a0..a4].
        loc: (B, 4A, S, S) offsets, channels [dx a0..a4, dy .., dw .., dh ..].
        mask_corr: (B, 256, S, S) mask-branch correlation feature (before its head).
        skips: conv1, layer1 and layer2 search features, for ``refine_mask``.
    """

    cls: Tensor
    loc: Tensor
    mask_corr: Tensor
    skips: tuple[Tensor, Tensor, Tensor]


class SiamMask(nn.Module):
    """SiamMask (Wang et al., "Fast Online Object Tracking and Segmentation: A Unifying
    Approach", CVPR 2019), refined-mask ("sharp") variant.

    Inputs are raw BGR pixels as float 0..255, NCHW, not normalised. The module holds
    weights only: template features are returned to the caller, never stored.

    Args:
        backbone: maps an image to four features (three refinement skips, then the deep one).
        neck: adjusts the deep feature for the heads (and crops the template's centre).
        rpn_cls: classification head (2 x anchors channels).
        rpn_loc: box regression head (4 x anchors channels).
        mask_head: mask head; its correlation feature also drives ``refine_head``.
        refine_head: refinement module producing 127x127 mask logits.
    """

    def __init__(
        self,
        backbone: nn.Module,
        neck: nn.Module,
        rpn_cls: DepthwiseCorrelation,
        rpn_loc: DepthwiseCorrelation,
        mask_head: DepthwiseCorrelation,
        refine_head: Refine,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.rpn_head = nn.ModuleDict({"cls": rpn_cls, "loc": rpn_loc})
        self.mask_head = mask_head
        self.refine_head = refine_head

    @staticmethod
    def _check_image(image: Tensor, name: str) -> None:
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"{name} must be a (B, 3, H, W) BGR tensor, got shape {tuple(image.shape)}")

    def template(self, z: Tensor) -> Tensor:
        """Template features (B, 256, 7, 7) from (B, 3, 127, 127) exemplar crops."""
        self._check_image(z, "template crop z")
        return self.neck(self.backbone(z)[-1])

    def track(self, x: Tensor, template_features: Tensor) -> SearchOutput:
        """Heads for (B, 3, H, H) search crops against ``template`` output of the same batch size."""
        self._check_image(x, "search crop x")
        p0, p1, p2, deep = self.backbone(x)
        search = self.neck(deep)
        return SearchOutput(
            cls=self.rpn_head["cls"](template_features, search),
            loc=self.rpn_head["loc"](template_features, search),
            mask_corr=self.mask_head.correlate(template_features, search),
            skips=(p0, p1, p2),
        )

    def mask_logits(self, search: SearchOutput) -> Tensor:
        """Unrefined mask logits (B, 63*63, S, S): one 63x63 mask per position (training)."""
        return self.mask_head.head(search.mask_corr)

    def refine_mask(self, search: SearchOutput, row: int, col: int) -> Tensor:
        """Refined (B, 127, 127) mask logits at score-map position (``row``, ``col``)."""
        return self.refine_head(search.skips, search.mask_corr, int(row), int(col))

    def forward(self, z: Tensor, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Training pass: (cls, loc, unrefined mask logits) for template/search pairs."""
        search = self.track(x, self.template(z))
        return search.cls, search.loc, self.mask_logits(search)


def siammask_r50(norm_layer: NormLayer | None = None, anchor_num: int = 5) -> SiamMask:
    """SiamMask with the dilated ResNet-50 backbone: the network of the published checkpoints."""
    return SiamMask(
        backbone=siammask_resnet50(norm_layer=norm_layer),
        neck=AdjustLayer(1024, 256, norm_layer=norm_layer),
        rpn_cls=DepthwiseCorrelation(2 * anchor_num, norm_layer=norm_layer),
        rpn_loc=DepthwiseCorrelation(4 * anchor_num, norm_layer=norm_layer),
        mask_head=DepthwiseCorrelation(63 * 63, norm_layer=norm_layer),
        refine_head=Refine(skip_channels=(64, 256, 512), corr_channels=256),
    )


UNRECORDED_ARCH = "siammask_r50"  # what files that record no architecture hold

#: Architecture name -> factory returning a randomly initialised SiamMask.
ARCHITECTURES: dict[str, Callable[[], SiamMask]] = {
    "siammask_r50": siammask_r50,
    "siammask_mnv2": siammask_mnv2,
}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; otherwise a validated ``torch.device``.

    Raises:
        ValueError: the string is not a device, or names a CUDA device that is not available.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"invalid device {device!r}: {exc}") from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} was requested but CUDA is not available")
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(f"device {str(device)!r} was requested but only {count} CUDA device(s) exist")
    return resolved


def build_siammask(
    arch: str | None = None,
    weights: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    optimize: bool = False,
) -> SiamMask:
    """Build a SiamMask in eval mode, optionally loading a checkpoint file.

    Args:
        arch: a key of ``ARCHITECTURES``; ``None`` takes the architecture the checkpoint
            records (published and pysot files are ``siammask_r50``), or ``siammask_r50``.
        weights: checkpoint path in the native, published or pysot layout; ``None`` keeps
            the random initialisation.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... (see ``resolve_device``).
        optimize: for tracking only: fold batch norm into the convolutions and store the
            weights channels-last (``inference.optimize_for_inference``). Same outputs up
            to float rounding, faster; the result can't be trained and its ``state_dict``
            lacks the checkpoint's batch-norm entries.

    Raises:
        ValueError: unknown ``arch`` or unavailable ``device``.
        CheckpointError: the checkpoint is missing, unreadable, for another architecture, or
            does not match the network key for key and shape for shape.
        RuntimeError: the network could not be moved to the device or folded (message says which).

    On CUDA this applies the fp32 numerics policy (``use_fp32_numerics``: no TF32).
    """
    checkpoint = load_checkpoint(weights) if weights is not None else None
    if arch is None:
        arch = checkpoint.arch if checkpoint is not None and checkpoint.arch else UNRECORDED_ARCH
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    target = resolve_device(device)
    model = ARCHITECTURES[arch]()
    model.arch = arch  # which tracker defaults apply (tracker.config.box_fallback_for)
    if checkpoint is not None:
        if checkpoint.arch is not None and checkpoint.arch != arch:
            raise CheckpointMismatchError(
                f"{weights} holds weights for architecture {checkpoint.arch!r}, not {arch!r}",
                layout=checkpoint.layout,
            )
        load_weights(model, checkpoint)
    if target.type == "cuda":
        use_fp32_numerics()
    try:
        model = model.to(target).eval()
    except RuntimeError as exc:  # out of memory, a CUDA build that lacks this GPU's architecture, ...
        raise RuntimeError(f"could not move the {arch} network to {target}: {exc}") from exc
    if not optimize:
        return model
    try:
        return optimize_for_inference(model)
    except Exception as exc:  # torch.fx tracing raises many types; all mean the same here
        raise RuntimeError(
            f"could not prepare the {arch} network for inference (folding batch norm): {type(exc).__name__}: "
            f"{exc}; build_siammask(..., optimize=False) runs it as loaded"
        ) from exc


def use_fp32_numerics() -> None:
    """The fp32 numerics policy on CUDA: TF32 off for matmuls and convolutions, and no
    cuDNN autotuning, so fp32 results match the CPU's to float rounding and repeat run to
    run (conformance with the published code depends on it). Global torch flags: set
    ``torch.backends.cuda.matmul.allow_tf32`` / ``torch.backends.cudnn.allow_tf32`` /
    ``torch.backends.cudnn.benchmark`` after building to trade that for speed."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
