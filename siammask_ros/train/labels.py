"""Training targets of SiamMask for one pair: anchor labels, box deltas and mask windows.

- Anchors are the tracker's (``tracker.geometry.generate_anchors``): 5 shapes on the 25x25
  grid, centres relative to the search-crop centre (pixel index 127 of 255).
- An anchor is positive when its IoU with the target box exceeds 0.6, negative below 0.3,
  ignored in between; at most 16 positives and 64 labelled anchors in all per pair are
  kept (sampled at random). A negative pair labels the anchors near the crop centre
  negative (where the template's object would be) and nothing positive.
- Box targets are the normalised deltas the tracker decodes:
  ``dx = (x - ax) / aw``, ``dy = (y - ay) / ah``, ``dw = log(w / aw)``, ``dh = log(h / ah)``.
- Mask targets: for a score-map cell (row, col) the mask head predicts the 127x127 window
  of the search crop whose top-left pixel is ``((col - 4) * 8, (row - 4) * 8)`` (where the
  tracker pastes it back), at 63x63; the refinement module predicts the same window at
  127x127.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from siammask_ros.tracker.config import TrackerConfig
from siammask_ros.tracker.geometry import generate_anchors

__all__ = ["LabelConfig", "PairTargets", "anchor_targets", "box_iou_cxcywh", "mask_window", "make_targets"]


@dataclass(frozen=True)
class LabelConfig:
    """Label assignment parameters (SiamMask/SiamRPN training values)."""

    pos_iou: float = 0.6
    neg_iou: float = 0.3
    pos_num: int = 16
    total_num: int = 64
    negative_pair_radius: int = 3  # cells around the centre labelled negative in a negative pair
    max_mask_cells: int = 8  # positive cells per pair that get a mask loss
    mask_size: int = 63
    tracker: TrackerConfig = TrackerConfig()

    def __post_init__(self) -> None:
        if not 0 <= self.neg_iou <= self.pos_iou <= 1:
            raise ValueError(f"need 0 <= neg_iou <= pos_iou <= 1, got {self.neg_iou}, {self.pos_iou}")
        if not 0 < self.pos_num <= self.total_num:
            raise ValueError(f"need 0 < pos_num <= total_num, got {self.pos_num}, {self.total_num}")

    @property
    def score_size(self) -> int:
        return self.tracker.score_size(self.tracker.instance_size)

    @property
    def crop_centre(self) -> float:
        return (self.tracker.instance_size - 1) / 2


@dataclass(frozen=True)
class PairTargets:
    """Targets of one pair.

    Attributes:
        cls: (A, S, S) int64: 1 positive, 0 negative, -1 ignored.
        delta: (4, A, S, S) float32 box deltas (meaningful where cls == 1).
        mask_cells: (K, 2) int64 (row, col) cells that get a mask loss (K may be 0).
        mask_labels: (K, 63, 63) float32 soft mask windows for those cells.
        refine_cell: (row, col) of the cell nearest the target centre, or None (negative pair).
        refine_label: (127, 127) float32 mask window at ``refine_cell``, or None.
    """

    cls: np.ndarray
    delta: np.ndarray
    mask_cells: np.ndarray
    mask_labels: np.ndarray
    refine_cell: tuple[int, int] | None
    refine_label: np.ndarray | None


def box_iou_cxcywh(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    """IoU of each row of ``boxes`` (N, 4) with ``box`` (4,), both as cx, cy, w, h."""
    ax0, ay0 = boxes[:, 0] - boxes[:, 2] / 2, boxes[:, 1] - boxes[:, 3] / 2
    ax1, ay1 = boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2
    bx0, by0, bx1, by1 = box[0] - box[2] / 2, box[1] - box[3] / 2, box[0] + box[2] / 2, box[1] + box[3] / 2
    iw = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None)
    ih = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
    inter = iw * ih
    return inter / (boxes[:, 2] * boxes[:, 3] + box[2] * box[3] - inter)


def _keep_random(rng: np.random.Generator, flags: np.ndarray, keep: int) -> np.ndarray:
    """``flags`` with all but ``keep`` randomly chosen True entries cleared."""
    index = np.flatnonzero(flags)
    if index.size > keep:
        flags = flags.copy()
        flags[rng.choice(index, index.size - keep, replace=False)] = False
    return flags


def anchor_targets(
    rng: np.random.Generator,
    box_cxcywh: np.ndarray | None,
    config: LabelConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Labels (A, S, S) and deltas (4, A, S, S) for a target box relative to the crop centre.

    ``box_cxcywh=None`` is a negative pair.
    """
    cfg = config or LabelConfig()
    size = cfg.score_size
    anchors = generate_anchors(cfg.tracker, size).astype(np.float64)  # (A*S*S, 4)
    count = anchors.shape[0]
    labels = np.full(count, -1, np.int64)
    delta = np.zeros((4, count), np.float32)
    if box_cxcywh is None:
        radius = cfg.negative_pair_radius * cfg.tracker.total_stride
        near = (np.abs(anchors[:, 0]) <= radius) & (np.abs(anchors[:, 1]) <= radius)
        labels[_keep_random(rng, near, cfg.total_num - cfg.pos_num)] = 0
        return labels.reshape(-1, size, size), delta.reshape(4, -1, size, size)
    box = np.asarray(box_cxcywh, np.float64)
    iou = box_iou_cxcywh(anchors, box)
    pos = _keep_random(rng, iou > cfg.pos_iou, cfg.pos_num)
    neg = _keep_random(rng, iou < cfg.neg_iou, cfg.total_num - int(pos.sum()))
    labels[neg] = 0
    labels[pos] = 1
    delta[0] = (box[0] - anchors[:, 0]) / anchors[:, 2]
    delta[1] = (box[1] - anchors[:, 1]) / anchors[:, 3]
    delta[2] = np.log(box[2] / anchors[:, 2])
    delta[3] = np.log(box[3] / anchors[:, 3])
    return labels.reshape(-1, size, size), delta.reshape(4, -1, size, size)


def mask_window(mask: np.ndarray, row: int, col: int, config: LabelConfig | None = None, out_size: int | None = None):
    """The float32 window of ``mask`` (search crop) predicted at cell (row, col), resized to ``out_size``."""
    cfg = config or LabelConfig()
    tc = cfg.tracker
    side = tc.exemplar_size
    pad = tc.base_size // 2 * tc.total_stride
    x0 = (col - tc.base_size // 2) * tc.total_stride + pad
    y0 = (row - tc.base_size // 2) * tc.total_stride + pad
    padded = np.pad(mask.astype(np.float32), pad)
    window = padded[y0 : y0 + side, x0 : x0 + side]
    if window.shape != (side, side):
        raise ValueError(f"cell (row={row}, col={col}) is outside the score map")
    out = out_size or side
    return window if out == side else cv2.resize(window, (out, out), interpolation=cv2.INTER_AREA)


def make_targets(
    rng: np.random.Generator,
    box_xyxy: tuple[float, float, float, float],
    mask: np.ndarray,
    positive: bool,
    config: LabelConfig | None = None,
) -> PairTargets:
    """All targets of one pair from its box (inclusive pixel indices) and visible mask."""
    cfg = config or LabelConfig()
    if not positive:
        cls, delta = anchor_targets(rng, None, cfg)
        empty = np.zeros((0, cfg.mask_size, cfg.mask_size), np.float32)
        return PairTargets(cls, delta, np.zeros((0, 2), np.int64), empty, None, None)
    x0, y0, x1, y1 = box_xyxy
    c = cfg.crop_centre
    box = np.array([(x0 + x1) / 2 - c, (y0 + y1) / 2 - c, x1 - x0 + 1, y1 - y0 + 1])
    cls, delta = anchor_targets(rng, box, cfg)
    cells_flags = (cls == 1).any(axis=0)
    cells = np.argwhere(_keep_random(rng, cells_flags.reshape(-1), cfg.max_mask_cells).reshape(cells_flags.shape))
    labels = np.stack([mask_window(mask, r, q, cfg, cfg.mask_size) for r, q in cells]) if len(cells) else (
        np.zeros((0, cfg.mask_size, cfg.mask_size), np.float32)
    )
    size = cfg.score_size
    stride = cfg.tracker.total_stride
    row = int(np.clip(round(box[1] / stride) + size // 2, 0, size - 1))
    col = int(np.clip(round(box[0] / stride) + size // 2, 0, size - 1))
    refine_label = mask_window(mask, row, col, cfg)
    return PairTargets(cls, delta, cells.astype(np.int64), labels.astype(np.float32), (row, col), refine_label)
