"""The choice and the mask refinement on the network's device: one copy back per frame.

With crops cut on the device (``crops``), a step on the host's terms still stops twice
per search size: once to bring the score and box maps back for the choice, and once for
the mask probabilities at the chosen position. Each stop drains the GPU queue. Here the
choice is made on the device in the host's arithmetic (``_Stepper.choose`` with numpy's
type rules: float32 scores and boxes, a float64 scale penalty and window sum, the first
maximum), the mask is refined at the chosen position of every target in the group, and
each target's choice and mask come back in one buffer, with those of every other group:
one copy per frame.

The result is the host's up to the last bit of float32 exponentials, which differ
between numpy, torch's CPU and CUDA: a choice between two candidates within that
rounding of each other may fall the other way.

A target whose choice does not publish a mask (below ``confidence_low``, or not finite)
is refined too, because deciding that needs the host; its probabilities are dropped.

Per-target scalars enter as device tensors (one upload per group, from pinned memory),
cast to the dtype numpy computes them in (NEP 50: a python float takes the array's
dtype, a numpy float64 promotes it): a GPU divides by a host scalar as a multiplication
by its reciprocal, which rounds differently. The buffer is float64, so the float64 step
size and the float32 values come back exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from siammask_ros.model import SearchOutput

from .geometry import _padded_size

__all__ = [
    "CHOICE_FIELDS",
    "DeviceChoice",
    "DeviceGrid",
    "TargetTerms",
    "choose_on_device",
    "pack_group",
    "unpack_choice",
]

#: Per target, before its 127x127 mask probabilities: best, row, col, confidence, lr,
#: pred dx, dy, w, h (frame pixels), and 1.0 where the choice is finite, else 0.0.
CHOICE_FIELDS = 10


class DeviceGrid(NamedTuple):
    """A score map's anchors and cosine window on the device (``_Grid`` there)."""

    anchors: Tensor  # (A*S*S, 4) float32
    window: Tensor  # (A*S*S,) float64


class TargetTerms(NamedTuple):
    """One target's scalars of the choice, from its state and plan (python floats)."""

    scale: float  # model pixels per frame pixel
    width: float  # target size in crop pixels
    height: float
    window_influence: float


class DeviceChoice(NamedTuple):
    """A group's choices on the device."""

    values: Tensor  # (B, CHOICE_FIELDS) float64
    rows: Tensor  # (B,) score-map positions, for the refinement
    cols: Tensor


def choose_on_device(
    output: SearchOutput, grid: DeviceGrid, terms: Sequence[TargetTerms], penalty_k: float, lr: float
) -> DeviceChoice:
    """The penalised, windowed argmax of every row of ``output``, as ``_Stepper.choose``."""
    target_padded, target_ratio, scale, keep, influence = _upload_terms(terms, output.cls.device)
    batch, score_size = output.cls.shape[0], output.cls.shape[-1]
    logits = output.cls.float().reshape(batch, 2, -1)
    shifted = logits - logits.max(dim=1, keepdim=True).values
    exp = torch.exp(shifted)
    scores = exp[:, 1] / (exp[:, 0] + exp[:, 1])  # (B, N)
    loc = output.loc.float().reshape(batch, 4, -1)
    anchors = grid.anchors
    boxes = torch.stack([
        loc[:, 0] * anchors[:, 2] + anchors[:, 0],
        loc[:, 1] * anchors[:, 3] + anchors[:, 1],
        torch.exp(loc[:, 2]) * anchors[:, 2],
        torch.exp(loc[:, 3]) * anchors[:, 3],
    ], dim=1)  # fmt: skip
    # As geometry.scale_ratio_penalty: the target's padded size is a numpy float64, which
    # makes the size change and the penalty float64; the aspect ratio stays float32.
    s_c = _change(_padded_size_on_device(boxes[:, 2], boxes[:, 3]) / target_padded)
    r_c = _change(target_ratio.float() / (boxes[:, 2] / boxes[:, 3]))
    penalty = torch.exp(-(r_c * s_c - 1) * penalty_k)
    pscore = penalty * scores * keep + grid.window * influence
    pscore = torch.where(torch.isfinite(pscore), pscore, torch.full_like(pscore, -torch.inf))
    best = pscore.argmax(dim=1)  # the first maximum, as numpy's
    pick = best[:, None]
    confidence = scores.gather(1, pick)
    step_lr = penalty.gather(1, pick) * confidence * lr
    pred = boxes.gather(2, pick[:, None].expand(-1, 4, 1))[:, :, 0] / scale.float()
    finite = torch.isfinite(pscore.gather(1, pick)) & torch.isfinite(step_lr)
    finite &= torch.isfinite(pred).all(1, keepdim=True)
    cells = score_size * score_size
    rows, cols = (best % cells) // score_size, best % score_size
    fields = [best[:, None], rows[:, None], cols[:, None], confidence, step_lr, pred, finite]
    return DeviceChoice(torch.cat([f.to(torch.float64) for f in fields], dim=1), rows, cols)


def _upload_terms(terms: Sequence[TargetTerms], device: torch.device) -> list[Tensor]:
    """(B, 1) float64 columns on ``device``: the target's padded size, its aspect ratio, the
    scale, 1 - window influence and the window influence. One copy from pinned memory that
    does not wait for the GPU (``torch.tensor(..., device="cuda")`` would)."""
    rows = [
        [float(_padded_size(t.width, t.height)), t.width / t.height, t.scale, 1 - t.window_influence,
         t.window_influence]
        for t in terms
    ]  # fmt: skip
    table = torch.tensor(rows, dtype=torch.float64)
    if device.type == "cuda":
        table = table.pin_memory().to(device, non_blocking=True)
    return list(table.split(1, dim=1))


def pack_group(choice: DeviceChoice, probs: Tensor) -> Tensor:
    """(B, CHOICE_FIELDS + 127*127) float64: each target's choice, then its mask probabilities."""
    return torch.cat([choice.values, probs.reshape(probs.shape[0], -1).to(torch.float64)], dim=1)


def unpack_choice(values: np.ndarray) -> tuple[int, int, int, float, float, np.ndarray | None, np.ndarray]:
    """One row of a packed buffer on the host: best, row, col, confidence, lr, pred (None
    when not finite) and the (127, 127) mask probabilities."""
    best, row, col = (int(v) for v in values[:3])
    pred = values[5:9].astype(np.float32) if values[9] else None
    side = int(round((values.size - CHOICE_FIELDS) ** 0.5))
    probs = values[CHOICE_FIELDS:].astype(np.float32).reshape(side, side)
    return best, row, col, float(values[3]), float(values[4]), pred, probs


def _change(ratio: Tensor) -> Tensor:
    return torch.maximum(ratio, torch.reciprocal(ratio))


def _padded_size_on_device(w: Tensor, h: Tensor) -> Tensor:
    """``geometry._padded_size`` in torch (numpy's ``sqrt`` cannot take a GPU tensor)."""
    pad = (w + h) * 0.5
    return torch.sqrt((w + pad) * (h + pad))
