"""SiamMask's training losses on a batch of pairs.

- cls: cross-entropy of the (background, foreground) logits, averaged separately over the
  sampled positive and negative anchors and the two halves averaged (SiamRPN's weighting);
- loc: smooth-L1 on the normalised deltas, over positive anchors only;
- mask: per-pixel binary cross-entropy of the unrefined 63x63 mask head at the chosen
  positive cells (the head runs only at those cells: it is a stack of 1x1 convolutions,
  so running it on the gathered feature vectors gives the same logits);
- refine: per-pixel binary cross-entropy of the refined 127x127 mask at the cell nearest
  the target centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from siammask_ros.model import SearchOutput, SiamMask
from siammask_ros.model.heads import RefineInputs

__all__ = ["BatchTargets", "LossWeights", "siammask_losses"]


@dataclass(frozen=True)
class LossWeights:
    cls: float = 1.0
    loc: float = 1.2
    mask: float = 4.0
    refine: float = 4.0
    smooth_l1_beta: float = 1.0 / 9.0


@dataclass(frozen=True)
class BatchTargets:
    """Targets of a batch, as tensors on the training device.

    Attributes:
        cls: (B, A, S, S) int64 labels 1 / 0 / -1.
        delta: (B, 4, A, S, S) float deltas.
        mask_index: (K, 3) int64 (batch, row, col) of the cells with a mask loss.
        mask_labels: (K, 63, 63) float soft labels.
        refine_index: (R, 3) int64 (batch, row, col), one per positive pair.
        refine_labels: (R, 127, 127) float soft labels.
    """

    cls: Tensor
    delta: Tensor
    mask_index: Tensor
    mask_labels: Tensor
    refine_index: Tensor
    refine_labels: Tensor


def _cls_loss(cls_logits: Tensor, labels: Tensor) -> Tensor:
    batch, channels, rows, cols = cls_logits.shape
    logp = F.log_softmax(cls_logits.view(batch, 2, channels // 2, rows, cols), dim=1)
    terms = []
    for value in (1, 0):
        chosen = labels == value
        if chosen.any():
            terms.append(-logp[:, value][chosen].mean())
    return torch.stack(terms).mean() if terms else cls_logits.sum() * 0


def _loc_loss(loc: Tensor, delta: Tensor, labels: Tensor, beta: float) -> Tensor:
    batch, channels, rows, cols = loc.shape
    pred = loc.view(batch, 4, channels // 4, rows, cols)
    positive = (labels == 1).unsqueeze(1).expand_as(pred)
    if not positive.any():
        return loc.sum() * 0
    per_value = F.smooth_l1_loss(pred[positive], delta[positive], beta=beta, reduction="sum")
    return per_value / (labels == 1).sum()


def _mask_loss(model: SiamMask, search: SearchOutput, index: Tensor, labels: Tensor) -> Tensor:
    # The head's batch norm needs two or more vectors to normalise in training mode.
    if index.shape[0] < 2:
        return search.mask_corr.sum() * 0
    b, r, c = index.unbind(1)
    vectors = search.mask_corr[b, :, r, c][:, :, None, None]  # (K, C, 1, 1)
    logits = model.mask_head.head(vectors).flatten(1)
    return F.binary_cross_entropy_with_logits(logits, labels.flatten(1))


def _refine_loss(model: SiamMask, search: SearchOutput, index: Tensor, labels: Tensor) -> Tensor:
    if index.shape[0] == 0:
        return search.mask_corr.sum() * 0
    refine = model.refine_head
    # Each pair has its own cell: crop per pair, then fuse all windows as one batch.
    crops = [
        refine.crop(tuple(s[b : b + 1] for s in search.skips), search.mask_corr[b : b + 1], r, c)
        for b, r, c in index.tolist()
    ]
    inputs = RefineInputs(*(torch.cat(parts) for parts in zip(*crops)))
    return F.binary_cross_entropy_with_logits(refine.fuse(inputs), labels)


def siammask_losses(
    model: SiamMask, template: Tensor, search_image: Tensor, targets: BatchTargets, weights: LossWeights
) -> dict[str, Tensor]:
    """Forward a batch and return each loss and their weighted sum under ``"total"``."""
    search = model.track(search_image, model.template(template))
    losses = {
        "cls": _cls_loss(search.cls, targets.cls),
        "loc": _loc_loss(search.loc, targets.delta, targets.cls, weights.smooth_l1_beta),
        "mask": _mask_loss(model, search, targets.mask_index, targets.mask_labels),
        "refine": _refine_loss(model, search, targets.refine_index, targets.refine_labels),
    }
    losses["total"] = (
        weights.cls * losses["cls"]
        + weights.loc * losses["loc"]
        + weights.mask * losses["mask"]
        + weights.refine * losses["refine"]
    )
    return losses
