"""Tracking metrics: box IoU, mask IoU (J), OTB-style success curve and its AUC, re-detection."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from siammask_ros.tracker.geometry import box_iou_xywh

__all__ = [
    "CONFIDENTLY_WRONG_IOU",
    "SUCCESS_THRESHOLDS",
    "box_iou_xywh",
    "confidently_wrong_frames",
    "mask_iou",
    "redetection_frames",
    "success_auc",
    "success_curve",
]

#: IoU thresholds of the success plot: 0, 0.05, ..., 1.0 (OTB's 21 points).
SUCCESS_THRESHOLDS: np.ndarray = np.linspace(0.0, 1.0, 21)
#: A frame that delivers a box (TRACKING) with a box IoU below this is confidently wrong.
CONFIDENTLY_WRONG_IOU = 0.1


def confidently_wrong_frames(delivered: np.ndarray, ious: np.ndarray) -> int:
    """Frames that delivered a box whose IoU is below ``CONFIDENTLY_WRONG_IOU``."""
    return int(np.count_nonzero(np.asarray(delivered, bool) & (np.asarray(ious) < CONFIDENTLY_WRONG_IOU)))


def mask_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Region similarity J: |pred & truth| / |pred | truth|; 1.0 when both are empty (DAVIS)."""
    if pred.shape != truth.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {truth.shape}")
    p, t = pred.astype(bool), truth.astype(bool)
    union = np.count_nonzero(p | t)
    return 1.0 if union == 0 else np.count_nonzero(p & t) / union


def success_curve(ious: Sequence[float], thresholds: np.ndarray = SUCCESS_THRESHOLDS) -> np.ndarray:
    """Fraction of frames whose IoU is strictly above each threshold."""
    values = np.asarray(ious, dtype=np.float64)
    if values.size == 0:
        return np.zeros(len(thresholds))
    return (values[None, :] > np.asarray(thresholds)[:, None]).mean(axis=1)


def success_auc(ious: Sequence[float], thresholds: np.ndarray = SUCCESS_THRESHOLDS) -> float:
    """Area under the success curve, as OTB reports it: the mean over the thresholds."""
    return float(success_curve(ious, thresholds).mean())


def redetection_frames(ious: Sequence[float], start: int, threshold: float = 0.5) -> int | None:
    """Frames from ``start`` until the first frame at or after it with IoU >= ``threshold``.

    0 means the target is held the moment it is visible again; None means never.
    """
    values = np.asarray(ious, dtype=np.float64)[start:]
    hits = np.flatnonzero(values >= threshold)
    return int(hits[0]) if hits.size else None
