"""Debug overlay of a tracking result on its frame (used by the runner and the ROS node)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from siammask_ros.tracker.result import TrackResult, TrackState

__all__ = ["STATE_COLORS", "draw_overlay", "draw_targets"]

# BGR, one colour per state for the mask tint, the box and the state label.
STATE_COLORS: dict[TrackState, tuple[int, int, int]] = {
    TrackState.TRACKING: (0, 200, 0),
    TrackState.LOST: (0, 80, 255),
    TrackState.IDLE: (170, 170, 170),
}
MASK_ALPHA = 0.45
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_SUBPIXEL_BITS = 4  # polyline vertices in 1/16 pixel


def draw_overlay(frame_bgr: np.ndarray, result: TrackResult) -> np.ndarray:
    """A new BGR uint8 image: ``frame_bgr`` with the mask tinted, the rotated box outlined
    and a label with state, confidence and search size in the top-left corner.

    ``frame_bgr`` (HxWx3 BGR or HxW mono, uint8) is not modified; ``result.mask`` must
    be HxW.
    """
    image = _bgr_copy(frame_bgr)
    color = STATE_COLORS[result.state]
    _tint_mask(image, result.mask, color)
    _draw_polygon(image, result.rotated_box.corners, color)
    labels = [
        (f"{result.state.value} {result.confidence:.3f}", color),
        (f"search {result.search_size}", (255, 255, 255)),
    ]
    _draw_labels(image, labels)
    return image


def draw_targets(frame_bgr: np.ndarray, targets: Sequence[tuple[str, TrackResult]]) -> np.ndarray:
    """As ``draw_overlay`` for several targets: each ``(target_id, result)`` gets its mask
    tint and rotated box, and one line of the top-left panel (id, state, confidence,
    search size)."""
    image = _bgr_copy(frame_bgr)
    labels = []
    for target_id, result in targets:
        color = STATE_COLORS[result.state]
        _tint_mask(image, result.mask, color)
        _draw_polygon(image, result.rotated_box.corners, color)
        labels.append((f"{target_id} {result.state.value} {result.confidence:.3f} s{result.search_size}", color))
    if labels:
        _draw_labels(image, labels)
    return image


def _bgr_copy(frame: np.ndarray) -> np.ndarray:
    if frame.dtype != np.uint8 or not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 3)):
        raise ValueError(f"frame must be HxWx3 or HxW uint8, got shape {frame.shape} dtype {frame.dtype}")
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    return frame.copy()


def _tint_mask(image: np.ndarray, mask: np.ndarray, color: tuple[int, int, int]) -> None:
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match frame shape {image.shape[:2]}")
    foreground = mask != 0
    blended = image[foreground] * (1.0 - MASK_ALPHA) + np.asarray(color) * MASK_ALPHA
    image[foreground] = np.round(blended).astype(np.uint8)


def _draw_polygon(image: np.ndarray, corners: np.ndarray, color: tuple[int, int, int]) -> None:
    if not np.all(np.isfinite(corners)):
        return
    thickness = max(1, round(min(image.shape[:2]) / 240))
    points = np.round(np.asarray(corners) * (1 << _SUBPIXEL_BITS)).astype(np.int32).reshape(-1, 1, 2)
    # A dark under-stroke keeps the outline visible on backgrounds of its own colour.
    cv2.polylines(image, [points], True, (0, 0, 0), thickness + 2, cv2.LINE_AA, _SUBPIXEL_BITS)
    cv2.polylines(image, [points], True, color, thickness, cv2.LINE_AA, _SUBPIXEL_BITS)


def _draw_labels(image: np.ndarray, labels: list[tuple[str, tuple[int, int, int]]]) -> None:
    """Text lines on a darkened panel, so they stay readable on any background."""
    height, width = image.shape[:2]
    margin = 3
    scale = min(1.0, max(0.35, min(height, width) / 480))
    widest = max(cv2.getTextSize(text, _FONT, scale, 1)[0][0] for text, _ in labels)
    scale *= min(1.0, (width - 2 * margin) / max(widest, 1))  # shrink to fit narrow frames
    thickness = max(1, round(scale * 1.5))

    sizes = [cv2.getTextSize(text, _FONT, scale, thickness) for text, _ in labels]
    line_height = max(h + baseline for (_, h), baseline in sizes) + margin
    panel_w = min(width, max(w for (w, _), _ in sizes) + 2 * margin)
    panel_h = min(height, line_height * len(labels) + margin)
    panel = image[:panel_h, :panel_w]
    panel[...] = (panel * 0.3).astype(np.uint8)

    for i, ((text, color), ((_, text_h), _)) in enumerate(zip(labels, sizes)):
        baseline_y = margin + i * line_height + text_h
        cv2.putText(image, text, (margin, baseline_y), _FONT, scale, color, thickness, cv2.LINE_AA)
