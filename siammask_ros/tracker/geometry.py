"""The numerical pieces of the SiamMask tracking step, one formula each.

Pure numpy/OpenCV, no torch. Every function follows the reference description
(``siammask-reference.md`` §2, §3, §5) to the letter, including its rounding: ``round`` is
Python's, ties to even, so a crop centred on an exact ``.5`` tie lands where the published
tracker puts it.

Conventions: frames are HxWx3 uint8 BGR; boxes given by users are ``(x, y, w, h)``
(top-left corner and size, 0-based pixels); internally a target is a centre and a size.
Score-map positions are flattened anchor-major, then row, then column.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import cv2
import numpy as np

from .result import RotatedBox

if TYPE_CHECKING:
    from .config import TrackerConfig

__all__ = [
    "COLOR_ORDERS",
    "InvalidBoxError",
    "InvalidFrameError",
    "PixelRect",
    "apply_prediction",
    "box_iou_xywh",
    "clip_state",
    "context_size",
    "cosine_window",
    "crop_patch",
    "crop_window",
    "decode_boxes",
    "fit_to_box",
    "foreground_scores",
    "generate_anchors",
    "mask_box_agreement",
    "mask_footprint",
    "mask_in_frame",
    "refined_patch_box",
    "rotated_box_from_mask",
    "scale_ratio_penalty",
    "search_side",
    "to_bgr",
    "validate_box",
    "warp_mask_to_frame",
]


# --------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------


class InvalidBoxError(ValueError):
    """A user-given target box that cannot be tracked; the message says why."""


class InvalidFrameError(ValueError):
    """A frame the tracker cannot read (empty, wrong dtype or channel count)."""


#: Accepted ``color_order`` values and the channel counts each accepts.
COLOR_ORDERS: dict[str, tuple[int, ...]] = {"bgr": (3,), "rgb": (3,), "mono": (1,)}


def to_bgr(frame: np.ndarray, color_order: str = "bgr") -> np.ndarray:
    """The frame as a C-contiguous HxWx3 uint8 BGR array.

    ``"bgr"`` and ``"rgb"`` take HxWx3; ``"mono"`` takes HxW or HxWx1 and replicates the
    channel. A BGR frame that is already contiguous is returned as is (not copied).

    Raises:
        ValueError: unknown ``color_order``.
        InvalidFrameError: not an array, not uint8, empty, or a shape that does not fit
            ``color_order``.
    """
    if color_order not in COLOR_ORDERS:
        raise ValueError(f"color_order must be one of {sorted(COLOR_ORDERS)}, got {color_order!r}")
    if not isinstance(frame, np.ndarray):
        raise InvalidFrameError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise InvalidFrameError(f"frame must be uint8, got dtype {frame.dtype}")
    if frame.size == 0:
        raise InvalidFrameError(f"frame is empty (shape {frame.shape})")
    if frame.ndim == 2 and color_order == "mono":
        frame = frame[:, :, None]
    if frame.ndim != 3 or frame.shape[2] not in COLOR_ORDERS[color_order]:
        expected = "HxW or HxWx1" if color_order == "mono" else "HxWx3"
        raise InvalidFrameError(f"a {color_order!r} frame must be {expected}, got shape {frame.shape}")
    frame = np.ascontiguousarray(frame)
    if color_order == "rgb":
        return cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    if color_order == "mono":
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    return frame


def validate_box(box_xywh: Sequence[float], frame_w: int, frame_h: int) -> tuple[float, float, float, float]:
    """Check a user box ``(x, y, w, h)`` against the frame; return ``(cx, cy, w, h)``.

    A box lying partly outside the frame is clipped to it (the reference tracker would
    instead pad the outside with the mean colour and learn it as part of the target).
    A box that lies inside is returned exactly: ``cx = x + w / 2``, ``cy = y + h / 2``.

    Raises:
        InvalidBoxError: not 4 numbers, a NaN or infinite value, a width or height <= 0,
            a box entirely outside the frame, or one whose clipped part is under 1 px wide
            or high.
    """
    try:
        values = [float(v) for v in np.asarray(box_xywh, dtype=np.float64).reshape(-1)]
    except (TypeError, ValueError):
        raise InvalidBoxError(f"box must be 4 numbers (x, y, w, h), got {box_xywh!r}") from None
    if len(values) != 4:
        raise InvalidBoxError(f"box must be 4 numbers (x, y, w, h), got {len(values)}: {box_xywh!r}")
    if not all(math.isfinite(v) for v in values):
        raise InvalidBoxError(f"box values must be finite, got {values}")
    x, y, w, h = values
    if w <= 0 or h <= 0:
        raise InvalidBoxError(f"box width and height must be > 0, got w={w:g}, h={h:g}")
    if x >= frame_w or y >= frame_h or x + w <= 0 or y + h <= 0:
        raise InvalidBoxError(
            f"box (x={x:g}, y={y:g}, w={w:g}, h={h:g}) lies entirely outside the {frame_w}x{frame_h} frame"
        )
    x, w = _clip_interval(x, w, frame_w)
    y, h = _clip_interval(y, h, frame_h)
    if w < 1 or h < 1:
        raise InvalidBoxError(
            f"box is only {w:g}x{h:g} px once clipped to the {frame_w}x{frame_h} frame (needs >= 1 px)"
        )
    return x + w / 2, y + h / 2, w, h


def _clip_interval(start: float, length: float, limit: int) -> tuple[float, float]:
    """``[start, start + length]`` clipped to ``[0, limit]``; untouched when inside."""
    end = start + length
    if start >= 0 and end <= limit:
        return start, length
    start, end = max(start, 0.0), min(end, float(limit))
    return start, end - start


# --------------------------------------------------------------------------------------
# Score map: anchors, window, decoding, penalties (§2)
# --------------------------------------------------------------------------------------


def generate_anchors(config: TrackerConfig, score_size: int) -> np.ndarray:
    """Anchors ``(A*S*S, 4)`` as ``[cx, cy, w, h]`` in search-crop pixels, float32.

    Shapes: base area ``stride**2``; per ratio r, ``aw = int(sqrt(area / r))``,
    ``ah = int(aw * r)``, times each scale (for the defaults: (104, 32), (88, 40),
    (64, 64), (40, 80), (32, 96)). Centres: offsets ``-(S//2)*stride .. +(S//2)*stride``
    from the crop centre. Order: anchor-major, then row, then column. float32 as in the
    reference (every value is an integer, so exact).
    """
    stride = config.total_stride
    area = stride * stride
    shapes = []
    for ratio in config.anchor_ratios:
        base_w = int(math.sqrt(area / ratio))
        base_h = int(base_w * ratio)
        shapes.extend((base_w * scale, base_h * scale) for scale in config.anchor_scales)
    offsets = (np.arange(score_size) - score_size // 2) * stride
    ys, xs = np.meshgrid(offsets, offsets, indexing="ij")
    cells = score_size * score_size
    anchors = np.empty((len(shapes), cells, 4), dtype=np.float32)
    anchors[:, :, 0] = xs.reshape(-1)
    anchors[:, :, 1] = ys.reshape(-1)
    anchors[:, :, 2:] = np.asarray(shapes, dtype=np.float32)[:, None, :]
    return anchors.reshape(-1, 4)


def cosine_window(score_size: int, anchor_num: int) -> np.ndarray:
    """``outer(hanning(S), hanning(S))`` flattened and tiled over the anchors: ``(A*S*S,)``."""
    hanning = np.hanning(score_size)
    return np.tile(np.outer(hanning, hanning).reshape(-1), anchor_num)


def decode_boxes(loc: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Regression offsets ``(4, N)`` -> boxes ``(4, N)`` as cx, cy, w, h in crop pixels.

    ``x = dx*aw + ax``, ``y = dy*ah + ay``, ``w = exp(dw)*aw``, ``h = exp(dh)*ah``.
    """
    loc = np.asarray(loc)
    if loc.ndim != 2 or loc.shape[0] != 4 or loc.shape[1] != anchors.shape[0]:
        raise ValueError(f"loc must be (4, {anchors.shape[0]}), got {loc.shape}")
    boxes = np.empty_like(loc)
    boxes[0] = loc[0] * anchors[:, 2] + anchors[:, 0]
    boxes[1] = loc[1] * anchors[:, 3] + anchors[:, 1]
    with np.errstate(over="ignore"):  # an overflow is inf, which the caller can test
        boxes[2] = np.exp(loc[2]) * anchors[:, 2]
        boxes[3] = np.exp(loc[3]) * anchors[:, 3]
    return boxes


def foreground_scores(cls: np.ndarray) -> np.ndarray:
    """Foreground probability per position, ``(A*S*S,)``, from ``(2A, S, S)`` logits.

    Channels are ``[bg a0..a4, fg a0..a4]``, so a reshape to ``(2, A*S*S)`` puts the
    background logits in row 0 and the foreground ones in row 1, each anchor-major then
    row then column: the same order as the anchors. A leading batch axis of 1 is accepted.
    """
    cls = np.asarray(cls)
    if cls.ndim == 4 and cls.shape[0] == 1:
        cls = cls[0]
    if cls.ndim != 3 or cls.shape[0] % 2:
        raise ValueError(f"cls must be (2A, S, S) or (1, 2A, S, S), got {cls.shape}")
    logits = cls.reshape(2, -1)
    # softmax over (bg, fg), shifted by the max for range safety
    shifted = logits - logits.max(axis=0)
    exp = np.exp(shifted)
    return exp[1] / (exp[0] + exp[1])


def _change(ratio: np.ndarray) -> np.ndarray:
    return np.maximum(ratio, 1.0 / ratio)


def _padded_size(w: np.ndarray | float, h: np.ndarray | float) -> np.ndarray | float:
    pad = (w + h) * 0.5
    return np.sqrt((w + pad) * (h + pad))


def scale_ratio_penalty(
    pred_w: np.ndarray,
    pred_h: np.ndarray,
    target_w_crop: float,
    target_h_crop: float,
    penalty_k: float,
) -> np.ndarray:
    """``exp(-(r_c * s_c - 1) * penalty_k)`` for each predicted box.

    ``s_c`` compares the context-padded sizes of the prediction and of the target (both
    in crop pixels), ``r_c`` their aspect ratios; each as ``max(r, 1/r)``.
    """
    s_c = _change(_padded_size(pred_w, pred_h) / _padded_size(target_w_crop, target_h_crop))
    r_c = _change((target_w_crop / target_h_crop) / (pred_w / pred_h))
    return np.exp(-(r_c * s_c - 1) * penalty_k)


def apply_prediction(
    center: tuple[float, float],
    size: tuple[float, float],
    pred_frame: np.ndarray,
    lr: float,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """The state after one step: the centre moves by the prediction's offset, the size
    moves towards the predicted size by ``lr``.

    ``pred_frame`` is the chosen box ``(dx, dy, w, h)`` already divided by the crop scale
    (frame pixels, offset from the current centre).
    """
    dx, dy, pw, ph = (float(v) for v in pred_frame)
    lr = float(lr)  # the state stays float64 whatever the network's dtype
    cx, cy = dx + center[0], dy + center[1]
    w = size[0] * (1 - lr) + pw * lr
    h = size[1] * (1 - lr) + ph * lr
    return (cx, cy), (w, h)


def clip_state(
    center: tuple[float, float],
    size: tuple[float, float],
    frame_w: int,
    frame_h: int,
    min_size: float = 10.0,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Centre into ``[0, W] x [0, H]``, size into ``[min_size, W] x [min_size, H]``.

    As in the reference the upper bound is applied first, so a frame narrower than
    ``min_size`` still gives ``min_size``.
    """
    cx = max(0.0, min(float(frame_w), center[0]))
    cy = max(0.0, min(float(frame_h), center[1]))
    w = max(min_size, min(float(frame_w), size[0]))
    h = max(min_size, min(float(frame_h), size[1]))
    return (cx, cy), (w, h)


# --------------------------------------------------------------------------------------
# Crops (§2)
# --------------------------------------------------------------------------------------


def context_size(w: float, h: float, context_amount: float) -> float:
    """Side of the square context region: ``sqrt((w + c(w+h)) * (h + c(w+h)))``."""
    pad = context_amount * (w + h)
    return math.sqrt((w + pad) * (h + pad))


def search_side(s_x: float, exemplar_size: int, instance_size: int) -> float:
    """Frame-pixel side of the search region for an ``instance_size`` crop, unrounded.

    ``s_x + 2 * ((instance - exemplar) / 2) / scale`` with ``scale = exemplar / s_x``,
    written as the reference writes it for 255; for the long-term size this is the same
    quantity as ``s_x * instance / exemplar`` (same image scale as the 255 crop).
    """
    scale = exemplar_size / s_x
    return s_x + 2 * ((instance_size - exemplar_size) / 2) / scale


class PixelRect(NamedTuple):
    """Inclusive integer pixel rectangle."""

    xmin: int
    ymin: int
    xmax: int
    ymax: int


def _as_side(side: float) -> int:
    side_int = int(side)
    if side_int != side or side_int < 1:
        raise ValueError(f"crop side must be a positive integer, got {side!r}")
    return side_int


def crop_window(center: tuple[float, float], side: float) -> PixelRect:
    """Frame pixels covered by a square crop of ``side`` px around ``center``.

    ``c = (side + 1) / 2``, ``xmin = round(cx - c)``, ``xmax = xmin + side - 1`` (same for
    y). ``round`` ties to even: a centre of 13.0 and a side of 4 give xmin = 10, not 11.
    """
    n = _as_side(side)
    half = (n + 1) / 2
    xmin = round(float(center[0]) - half)
    ymin = round(float(center[1]) - half)
    return PixelRect(xmin, ymin, xmin + n - 1, ymin + n - 1)


class WindowInFrame(NamedTuple):
    """The in-frame part of a crop window, as slices into the frame and into the window."""

    frame_rows: slice
    frame_cols: slice
    window_rows: slice
    window_cols: slice
    whole: bool  # the window lies entirely inside the frame
    empty: bool  # no pixel of the window lies inside the frame


def window_in_frame(win: PixelRect, frame_w: int, frame_h: int) -> WindowInFrame:
    """Where ``win`` overlaps a ``frame_w`` x ``frame_h`` frame (the rest takes the pad colour)."""
    x0, y0 = max(win.xmin, 0), max(win.ymin, 0)
    x1, y1 = min(win.xmax + 1, frame_w), min(win.ymax + 1, frame_h)
    whole = (x0, y0, x1, y1) == (win.xmin, win.ymin, win.xmax + 1, win.ymax + 1)
    return WindowInFrame(slice(y0, y1), slice(x0, x1), slice(y0 - win.ymin, y1 - win.ymin),
                         slice(x0 - win.xmin, x1 - win.xmin), whole, not (x0 < x1 and y0 < y1))  # fmt: skip


def crop_patch(
    frame_bgr: np.ndarray,
    center: tuple[float, float],
    side: float,
    out_size: int,
    pad_color: np.ndarray | Sequence[int],
) -> np.ndarray:
    """The ``side`` x ``side`` crop around ``center``, resized to ``out_size`` (uint8).

    Pixels outside the frame take ``pad_color`` (uint8, the reference's truncated
    channel average). Only the in-frame part of the window is bordered with the pad
    colour: the same pixels as padding the whole frame first, at a cost of ``side**2``
    whatever the frame size. The patch is resized with OpenCV's
    bilinear filter on uint8, and not at all when ``side == out_size``.
    """
    n = _as_side(side)
    frame_h, frame_w = frame_bgr.shape[:2]
    part = window_in_frame(crop_window(center, n), frame_w, frame_h)
    if part.whole:
        patch = frame_bgr[part.frame_rows, part.frame_cols]  # a view, no copy
    elif part.empty:
        patch = np.empty((n, n, frame_bgr.shape[2]), dtype=np.uint8)
        patch[:] = np.asarray(pad_color, dtype=np.uint8)
    else:
        # OpenCV writes a constant border far faster than a numpy fill and copy (a 1500 px
        # lost-mode window: 16 -> 3 ms); the pixels are the same.
        top, left = part.window_rows.start, part.window_cols.start
        bottom, right = n - part.window_rows.stop, n - part.window_cols.stop
        colour = [int(v) for v in np.asarray(pad_color, dtype=np.uint8)]
        inside = frame_bgr[part.frame_rows, part.frame_cols]
        patch = cv2.copyMakeBorder(inside, top, bottom, left, right, cv2.BORDER_CONSTANT, value=colour)
    if n != out_size:
        return cv2.resize(patch, (out_size, out_size), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(patch)


# --------------------------------------------------------------------------------------
# Mask and rotated box (§3)
# --------------------------------------------------------------------------------------


def refined_patch_box(
    crop_center: tuple[float, float],
    crop_side_px: int,
    instance_size: int,
    row: int,
    col: int,
    config: TrackerConfig,
) -> tuple[float, float, float]:
    """Frame region ``(x0, y0, side)`` that the refined 127x127 mask at (row, col) covers.

    ``crop_center`` is the centre the search crop was taken around (before this frame's
    update) and ``crop_side_px`` the side actually cropped, ``round(search side)``.
    With ``s = R / instance``: ``x0 = cx - R/2 + (col - base/2) * stride * s``, likewise
    y with ``row``, and ``side = exemplar * s``. The crop corner is not rounded.
    """
    s = crop_side_px / instance_size
    crop_x0 = crop_center[0] - crop_side_px / 2
    crop_y0 = crop_center[1] - crop_side_px / 2
    x0 = crop_x0 + (col - config.base_size / 2) * config.total_stride * s
    y0 = crop_y0 + (row - config.base_size / 2) * config.total_stride * s
    return x0, y0, s * config.exemplar_size


def _mask_affine(patch_size: int, x0: float, y0: float, side: float, frame_w: int, frame_h: int) -> np.ndarray:
    """Forward map patch (u, v) -> frame ``((W-1)/W (x0 + u side/P), (H-1)/H (y0 + v side/P))``.

    Evaluated in the reference's order of operations (it builds the inverse "back box"
    first), so the float64 matrix, and hence the warp, is bit-identical to it.
    """
    s = patch_size / side
    back_x, back_y, back_w, back_h = -x0 * s, -y0 * s, frame_w * s, frame_h * s
    a = (frame_w - 1) / back_w
    b = (frame_h - 1) / back_h
    return np.array([[a, 0.0, -a * back_x], [0.0, b, -b * back_y]], dtype=np.float64)


def _check_prob(prob: np.ndarray) -> np.ndarray:
    prob = np.asarray(prob)
    if prob.ndim != 2 or prob.shape[0] != prob.shape[1]:
        raise ValueError(f"mask probabilities must be a square 2-D array, got shape {prob.shape}")
    return np.ascontiguousarray(prob, dtype=np.float32)


def warp_mask_to_frame(
    prob: np.ndarray, x0: float, y0: float, side: float, frame_w: int, frame_h: int, rows: int | None = None
) -> np.ndarray:
    """Warp patch probabilities ``(P, P)`` into the frame: float32 ``(H, W)``.

    OpenCV ``warpAffine`` with the forward map of :func:`_mask_affine`, bilinear, and a
    constant border of -1 (background at any threshold >= 0). ``rows`` limits the output
    to the first ``rows`` frame rows; OpenCV computes each destination row on its own, so
    those rows are the same as in the full warp.
    """
    prob = _check_prob(prob)
    matrix = _mask_affine(prob.shape[0], x0, y0, side, frame_w, frame_h)
    out_rows = frame_h if rows is None else rows
    return cv2.warpAffine(
        prob,
        matrix,
        (frame_w, out_rows),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=-1.0,
    )


def mask_footprint(
    x0: float, y0: float, side: float, frame_w: int, frame_h: int, patch_size: int = 127
) -> tuple[int, int, int, int]:
    """Half-open frame rectangle ``(xs, ys, xe, ye)`` outside which the warp is border.

    A destination pixel reads patch pixels only if its source coordinate u lies in
    (-1, P) (bilinear taps floor(u) and floor(u)+1); this widens that interval by one
    patch pixel and one frame pixel on each side to absorb OpenCV's coordinate rounding.
    Empty (``xs >= xe`` or ``ys >= ye``) when the patch misses the frame.
    """
    step = side / patch_size

    def span(origin: float, limit: int) -> tuple[int, int]:
        k = (limit - 1) / limit
        lo = math.floor(k * (origin - 2 * step)) - 1
        hi = math.ceil(k * (origin + (patch_size + 1) * step)) + 2
        return min(max(lo, 0), limit), min(max(hi, 0), limit)

    xs, xe = span(x0, frame_w)
    ys, ye = span(y0, frame_h)
    return xs, ys, xe, ye


def mask_in_frame(
    prob: np.ndarray,
    x0: float,
    y0: float,
    side: float,
    frame_w: int,
    frame_h: int,
    threshold: float,
    region_limited: bool = True,
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Binary uint8 ``(H, W)`` mask ``warp > threshold`` and a rectangle holding all its
    non-zero pixels (half-open ``(xs, ys, xe, ye)``).

    With ``region_limited`` the warp stops after the last row the patch can reach and the
    threshold runs only inside :func:`mask_footprint`; the mask is bit-identical to
    thresholding the full-frame warp (the rows computed are the full warp's rows, and
    outside the footprint the full warp holds the -1 border). Without it, the full frame
    is warped and the rectangle is the whole frame.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"mask threshold must be in [0, 1], got {threshold}")
    if not region_limited:
        warped = warp_mask_to_frame(prob, x0, y0, side, frame_w, frame_h)
        return (warped > threshold).astype(np.uint8), (0, 0, frame_w, frame_h)
    xs, ys, xe, ye = mask_footprint(x0, y0, side, frame_w, frame_h, patch_size=np.shape(prob)[0])
    mask = np.zeros((frame_h, frame_w), dtype=np.uint8)
    if xs >= xe or ys >= ye:
        return mask, (0, 0, 0, 0)
    warped = warp_mask_to_frame(prob, x0, y0, side, frame_w, frame_h, rows=ye)
    mask[ys:ye, xs:xe] = warped[ys:ye, xs:xe] > threshold
    return mask, (xs, ys, xe, ye)


def rotated_box_from_mask(
    mask: np.ndarray,
    fallback_center: tuple[float, float],
    fallback_size: tuple[float, float],
    region: tuple[int, int, int, int] | None = None,
    min_area: float = 100.0,
) -> RotatedBox:
    """Minimum-area rectangle of the mask's largest external contour.

    Contours are external, uncompressed; the largest by ``cv2.contourArea`` (the first
    on a tie) is used if its area exceeds ``min_area``; otherwise the axis-aligned
    fallback box. ``region`` (half-open ``xs, ys, xe, ye``), when given, must contain
    every non-zero pixel; contours are then searched there only, with the same result.
    """
    xs, ys = 0, 0
    if region is not None:
        xs, ys, xe, ye = region
        mask = mask[ys:ye, xs:xe]
    if mask.size:
        contours, _ = cv2.findContours(
            np.ascontiguousarray(mask), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE, offset=(xs, ys)
        )
        if contours:
            areas = [cv2.contourArea(c) for c in contours]
            best = int(np.argmax(areas))
            if areas[best] > min_area:
                return RotatedBox.from_corners(cv2.boxPoints(cv2.minAreaRect(contours[best])))
    return RotatedBox.axis_aligned(fallback_center[0], fallback_center[1], fallback_size[0], fallback_size[1])


def mask_box_agreement(mask_box: RotatedBox, size: tuple[float, float]) -> float:
    """How well the mask's rotated box agrees in area with the box branch's ``size`` (w, h):
    the smaller area over the larger, for the mask box itself or for its upright hull,
    whichever agrees better (1 = same area).

    A box branch frames a turned target by the target's own sides or by its upright hull
    (networks differ, and its box trails a turn by the state's smoothing), so a mask box
    that is right about a turned target comes close in area one way or the other. One
    spilling onto a neighbour (the hand holding a cup) or covering a fragment of the target
    does not.
    """
    box_area = size[0] * size[1]
    hull_width, hull_height = np.ptp(mask_box.corners, axis=0)
    best = 0.0
    for area in (mask_box.width * mask_box.height, hull_width * hull_height):
        larger = max(area, box_area)
        best = max(best, min(area, box_area) / larger if larger > 0 else 1.0)
    return float(best)


def fit_to_box(box: RotatedBox, center: tuple[float, float], size: tuple[float, float]) -> RotatedBox:
    """``box``'s shape and angle, centred on ``center`` and scaled so that its upright hull
    has the area of a ``size`` (w, h) box.

    The hull, because that is what a box branch trained on upright boxes frames; for an
    upright ``box`` it is the box itself. A degenerate ``box`` (no area) gives the
    axis-aligned ``size`` box.
    """
    hull_width, hull_height = np.ptp(box.corners, axis=0)
    hull_area, target_area = float(hull_width * hull_height), float(size[0] * size[1])
    if not (hull_area > 0 and math.isfinite(hull_area)):
        return RotatedBox.axis_aligned(center[0], center[1], size[0], size[1])
    offsets = box.corners - box.corners.mean(axis=0)
    return RotatedBox.from_corners(offsets * math.sqrt(target_area / hull_area) + np.asarray(center, dtype=float))


def box_iou_xywh(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two (x, y, w, h) boxes in continuous pixel coordinates; 0 when either is empty."""
    ax, ay, aw, ah = (float(v) for v in a)
    bx, by, bw, bh = (float(v) for v in b)
    if aw <= 0 or ah <= 0 or bw <= 0 or bh <= 0:
        return 0.0
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter)
