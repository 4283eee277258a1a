"""Each formula of siammask_ros.tracker.geometry against numbers worked out here."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from siammask_ros.tracker import InvalidBoxError, InvalidFrameError, TrackerConfig
from siammask_ros.tracker.geometry import (
    apply_prediction,
    clip_state,
    context_size,
    cosine_window,
    crop_patch,
    crop_window,
    decode_boxes,
    foreground_scores,
    generate_anchors,
    mask_footprint,
    mask_in_frame,
    refined_patch_box,
    rotated_box_from_mask,
    scale_ratio_penalty,
    search_side,
    to_bgr,
    validate_box,
    warp_mask_to_frame,
)

CFG = TrackerConfig()


# ----------------------------------------------------------------------------- anchors


def test_anchor_shapes_and_grid_for_255_search():
    anchors = generate_anchors(CFG, 25)
    assert anchors.shape == (5 * 25 * 25, 4)
    assert anchors.dtype == np.float32
    # int(sqrt(64 / r)) and int(aw * r), times 8, worked out by hand:
    # r=0.33: sqrt(193.9..)=13.9 -> 13, 13*0.33=4.29 -> 4; r=0.5: 11, 5; r=1: 8, 8;
    # r=2: sqrt(32)=5.65 -> 5, 10; r=3: sqrt(21.3)=4.6 -> 4, 12.
    shapes = [(104, 32), (88, 40), (64, 64), (40, 80), (32, 96)]
    for a, (w, h) in enumerate(shapes):
        block = anchors[a * 625 : (a + 1) * 625]
        assert np.all(block[:, 2] == w) and np.all(block[:, 3] == h)
    # index = anchor * S*S + row * S + col; centre offsets (col - 12) * 8, (row - 12) * 8
    assert tuple(anchors[0]) == (-96, -96, 104, 32)
    assert tuple(anchors[1]) == (-88, -96, 104, 32)  # next column
    assert tuple(anchors[25]) == (-96, -88, 104, 32)  # next row
    assert tuple(anchors[3 * 625 + 12 * 25 + 12]) == (0, 0, 40, 80)
    assert tuple(anchors[4 * 625 + 24 * 25 + 20]) == (64, 96, 32, 96)


def test_anchor_grid_for_831_search_spans_plus_minus_384():
    anchors = generate_anchors(CFG, 97)
    assert anchors.shape == (5 * 97 * 97, 4)
    assert anchors[:, 0].min() == -384 and anchors[:, 0].max() == 384
    assert tuple(anchors[2 * 97 * 97 + 48 * 97 + 48]) == (0, 0, 64, 64)


def test_cosine_window_is_outer_hanning_tiled_over_anchors():
    window = cosine_window(5, 3)
    # numpy's hanning(5) = 0.5 - 0.5 cos(2 pi n / 4) = [0, .5, 1, .5, 0]
    expected_2d = np.array([0, 0.5, 1, 0.5, 0])[:, None] * np.array([0, 0.5, 1, 0.5, 0])[None, :]
    assert window.shape == (75,)
    for a in range(3):
        np.testing.assert_allclose(window[a * 25 : (a + 1) * 25].reshape(5, 5), expected_2d, atol=1e-15)
    assert window[1 * 25 + 2 * 5 + 2] == 1.0
    assert window[25 * 2 + 1 * 5 + 2] == pytest.approx(0.5)


# ----------------------------------------------------------------------------- sizes and rounding


def test_context_size():
    # w=30, h=20: pad = 0.5 * 50 = 25 -> sqrt(55 * 45)
    assert context_size(30, 20, 0.5) == pytest.approx(math.sqrt(2475))
    assert context_size(10, 10, 0.5) == pytest.approx(20.0)


def test_search_side_is_the_same_scale_for_255_and_831():
    s_x = 100.0
    # 255: s_x + 2 * 64 / (127 / s_x) = 100 + 12800 / 127
    assert search_side(s_x, 127, 255) == pytest.approx(100 + 12800 / 127, rel=1e-15)
    assert search_side(s_x, 127, 831) == pytest.approx(100 * 831 / 127, rel=1e-14)


def test_crop_window_rounds_ties_to_even():
    # side 4 -> c = 2.5; 13 - 2.5 = 10.5 -> 10 (floor(x + 0.5) would give 11)
    assert tuple(crop_window((13.0, 14.0), 4)) == (10, 12, 13, 15)  # 11.5 -> 12
    # side 5 -> c = 3; exact integers are kept
    assert tuple(crop_window((10.0, 0.0), 5)) == (7, -3, 11, 1)
    # a float-valued integer side is accepted
    assert tuple(crop_window((13.0, 14.0), 4.0)) == (10, 12, 13, 15)
    with pytest.raises(ValueError, match="positive integer"):
        crop_window((0.0, 0.0), 4.5)


def test_template_side_rounding_ties_to_even():
    # w = h = 10.25 -> context side exactly 20.5 -> round -> 20
    assert context_size(10.25, 10.25, 0.5) == 20.5
    assert round(context_size(10.25, 10.25, 0.5)) == 20


# ----------------------------------------------------------------------------- crops


def _naive_crop(frame, center, side, out_size, avg):
    """The reference recipe: pad the whole frame with the float average, then slice."""
    c = (side + 1) / 2
    xmin = round(center[0] - c)
    ymin = round(center[1] - c)
    xmax, ymax = xmin + side - 1, ymin + side - 1
    h, w = frame.shape[:2]
    left, top = max(0, -xmin), max(0, -ymin)
    right, bottom = max(0, xmax - w + 1), max(0, ymax - h + 1)
    big = np.zeros((h + top + bottom, w + left + right, 3), np.uint8)
    big[:] = avg  # float into uint8: truncation
    big[top : top + h, left : left + w] = frame
    patch = big[ymin + top : ymax + top + 1, xmin + left : xmax + left + 1]
    if side != out_size:
        patch = cv2.resize(patch, (out_size, out_size))
    return patch


def test_pad_colour_is_the_truncated_channel_average():
    frame = np.zeros((4, 4, 3), np.uint8)
    frame[..., 0] = 101
    frame[0, :, 0] = 100  # mean 100.75 -> 100 (rounding would give 101)
    frame[..., 1] = 7
    frame[..., 2] = [[0, 255, 255, 255]] * 4  # mean 191.25 -> 191
    avg = np.mean(frame, axis=(0, 1)).astype(np.uint8)
    assert tuple(avg) == (100, 7, 191)
    patch = crop_patch(frame, (0.0, 0.0), 3, 3, avg)  # window x,y in [-2, 0]
    assert tuple(patch[0, 0]) == (100, 7, 191)
    assert tuple(patch[2, 2]) == tuple(frame[0, 0])


@pytest.mark.parametrize(
    "center",
    [(2.0, 20.0), (38.0, 20.0), (20.0, 1.5), (20.0, 29.0), (0.0, 0.0), (40.0, 30.0), (-30.0, 10.0)],
    ids=["left", "right", "top", "bottom", "top-left", "bottom-right", "fully-outside"],
)
def test_crop_hanging_off_an_edge_matches_full_padding(center):
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    avg = np.mean(frame, axis=(0, 1))
    for side, out in [(11, 11), (12, 12), (17, 9), (9, 17)]:
        got = crop_patch(frame, center, side, out, avg.astype(np.uint8))
        assert got.shape == (out, out, 3) and got.dtype == np.uint8
        np.testing.assert_array_equal(got, _naive_crop(frame, center, side, out, avg))


def test_crop_larger_than_the_frame_matches_full_padding():
    rng = np.random.default_rng(2)
    frame = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    avg = np.mean(frame, axis=(0, 1))
    for center, side, out in [((8.0, 6.0), 301, 127), ((8.5, 6.5), 64.0, 64), ((0.0, 11.0), 1000, 255)]:
        got = crop_patch(frame, center, side, out, avg.astype(np.uint8))
        np.testing.assert_array_equal(got, _naive_crop(frame, center, int(side), out, avg))
    patch = crop_patch(frame, (8.0, 6.0), 64, 64, avg.astype(np.uint8))
    # c = 32.5 -> xmin = round(-24.5) = -24, ymin = round(-26.5) = -26
    np.testing.assert_array_equal(patch[26:38, 24:40], frame)


def test_crop_random_windows_match_full_padding():
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (25, 33, 3), dtype=np.uint8)
    avg = np.mean(frame, axis=(0, 1))
    for _ in range(50):
        center = (float(rng.uniform(-20, 55)), float(rng.uniform(-20, 45)))
        side = int(rng.integers(1, 70))
        out = int(rng.integers(5, 40))
        got = crop_patch(frame, center, side, out, avg.astype(np.uint8))
        np.testing.assert_array_equal(got, _naive_crop(frame, center, side, out, avg))


def test_crop_is_not_resized_when_side_equals_model_size():
    rng = np.random.default_rng(4)
    frame = rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)
    # side 255 at (150, 150): c = 128, xmin = 22 -> exactly the frame slice, no filtering
    patch = crop_patch(frame, (150.0, 150.0), 255, 255, np.zeros(3, np.uint8))
    np.testing.assert_array_equal(patch, frame[22:277, 22:277])
    assert patch.flags.c_contiguous
    # one pixel more and it is resized (bilinear changes a random image)
    resized = crop_patch(frame, (150.0, 150.0), 256, 255, np.zeros(3, np.uint8))
    assert not np.array_equal(resized, frame[22:277, 22:277])


# ----------------------------------------------------------------------------- scores and boxes


def test_decode_boxes():
    anchors = np.array([[0, 0, 104, 32], [8, -16, 64, 64]], dtype=np.float32)
    loc = np.array([[0.5, -1.0], [0.25, 0.5], [0.0, math.log(2)], [math.log(0.5), 0.0]], dtype=np.float32)
    boxes = decode_boxes(loc, anchors)
    # x = dx*aw + ax, y = dy*ah + ay, w = exp(dw)*aw, h = exp(dh)*ah
    np.testing.assert_allclose(boxes[:, 0], [52, 8, 104, 16], rtol=1e-6)
    np.testing.assert_allclose(boxes[:, 1], [-56, 16, 128, 64], rtol=1e-6)


def test_foreground_scores_follow_the_anchor_major_order():
    s = 4
    cls = np.zeros((1, 10, s, s), np.float32)
    # anchor 2 at row 1, col 3: bg channel 2, fg channel 5 + 2
    cls[0, 2, 1, 3] = -3.0
    cls[0, 7, 1, 3] = 2.0
    # anchor 4 at row 0, col 0: only the fg logit
    cls[0, 9, 0, 0] = -1.0
    scores = foreground_scores(cls)
    assert scores.shape == (5 * s * s,)
    assert scores[2 * s * s + 1 * s + 3] == pytest.approx(1 / (1 + math.exp(-5)), rel=1e-6)
    assert scores[4 * s * s] == pytest.approx(1 / (1 + math.exp(1)), rel=1e-6)
    untouched = np.delete(scores, [2 * s * s + 1 * s + 3, 4 * s * s])
    np.testing.assert_allclose(untouched, 0.5)
    # huge logits do not overflow
    cls[0, 5, 0, 0] = 1e4
    assert foreground_scores(cls)[0] == 1.0


def test_scale_and_ratio_penalty():
    k = 0.04
    tw, th = 40.0, 20.0
    pw = np.array([40.0, 80.0, 20.0])
    ph = np.array([20.0, 40.0, 40.0])
    penalty = scale_ratio_penalty(pw, ph, tw, th, k)
    # same box: no penalty; doubled box: s_c = 2; swapped sides: same padded size,
    # r_c = (40/20) / (20/40) = 4
    np.testing.assert_allclose(penalty, [1.0, math.exp(-1 * k), math.exp(-3 * k)], rtol=1e-12)


def test_prediction_update_blends_size_by_lr():
    center, size = apply_prediction((100.0, 50.0), (40.0, 20.0), np.array([4.0, -2.0, 60.0, 10.0]), 0.25)
    assert center == (104.0, 48.0)
    assert size == (0.75 * 40 + 0.25 * 60, 0.75 * 20 + 0.25 * 10)
    assert all(type(v) is float for v in center + size)


def test_clip_state():
    assert clip_state((-5.0, 130.0), (5.0, 500.0), 160, 120) == ((0.0, 120.0), (10.0, 120.0))
    assert clip_state((170.0, 60.0), (200.0, 9.9), 160, 120) == ((160.0, 60.0), (160.0, 10.0))
    assert clip_state((80.0, 60.0), (30.0, 20.0), 160, 120) == ((80.0, 60.0), (30.0, 20.0))
    # a frame narrower than the minimum size still gives the minimum
    assert clip_state((3.0, 3.0), (4.0, 4.0), 6, 6)[1] == (10.0, 10.0)


# ----------------------------------------------------------------------------- mask warp


def test_refined_patch_box():
    x0, y0, side = refined_patch_box((100.0, 80.0), 300, 255, 3, 10, CFG)
    s = 300 / 255
    assert x0 == pytest.approx(100 - 150 + (10 - 4) * 8 * s)
    assert y0 == pytest.approx(80 - 150 + (3 - 4) * 8 * s)
    assert side == pytest.approx(127 * s)
    # the centre cell of a 25 map: x0 = 100 - 127.5 + 8 * 8 = 36.5, side 127 -> centred
    x0, y0, side = refined_patch_box((100.0, 80.0), 255, 255, 12, 12, CFG)
    assert (x0, y0, side) == (36.5, 16.5, 127.0)


def _tent(t):
    return np.maximum(0.0, 1.0 - np.abs(t))


def test_warp_puts_a_patch_pixel_where_the_formula_says():
    prob = np.zeros((127, 127), np.float32)
    u, v = 60, 40
    prob[v, u] = 1.0
    w, h = 200, 150
    x0, y0, side = 17.3, -5.6, 150.5
    warped = warp_mask_to_frame(prob, x0, y0, side, w, h)
    assert warped.shape == (h, w) and warped.dtype == np.float32
    # forward map: x = (W-1)/W (x0 + u side/127), y likewise
    x = (w - 1) / w * (x0 + u * side / 127)
    y = (h - 1) / h * (y0 + v * side / 127)
    assert np.unravel_index(np.argmax(warped), warped.shape) == (round(y), round(x))
    # each frame pixel is the bilinear sample of the patch at the inverse map
    ys, xs = np.mgrid[0:h, 0:w]
    src_u = xs * w / (w - 1) * 127 / side - x0 * 127 / side
    src_v = ys * h / (h - 1) * 127 / side - y0 * 127 / side
    expected = _tent(src_u - u) * _tent(src_v - v)
    inside = (src_u >= 0) & (src_u <= 126) & (src_v >= 0) & (src_v <= 126)
    np.testing.assert_allclose(warped[inside], expected[inside], atol=0.04)
    # far outside the patch: the -1 border
    assert warped[h - 1, w - 1] == -1.0 and warped[0, 0] == -1.0 and warped[50, 30] == 0.0


def _random_warp_cases(rng, count):
    for _ in range(count):
        w, h = int(rng.integers(40, 260)), int(rng.integers(40, 200))
        side = float(rng.uniform(8, 500))
        yield (
            rng.random((127, 127), dtype=np.float32),
            float(rng.uniform(-side, w + 5)),
            float(rng.uniform(-side, h + 5)),
            side,
            w,
            h,
        )


def test_region_limited_mask_is_identical_to_the_full_warp():
    rng = np.random.default_rng(5)
    nonempty = 0
    for prob, x0, y0, side, w, h in _random_warp_cases(rng, 200):
        full = warp_mask_to_frame(prob, x0, y0, side, w, h)
        for thr in (0.0, 0.3, 0.5):
            mask, (xs, ys, xe, ye) = mask_in_frame(prob, x0, y0, side, w, h, thr)
            np.testing.assert_array_equal(mask, (full > thr).astype(np.uint8))
            full_mask, _ = mask_in_frame(prob, x0, y0, side, w, h, thr, region_limited=False)
            np.testing.assert_array_equal(full_mask, mask)
        # outside the footprint the full warp holds the border value
        outside = np.ones((h, w), bool)
        outside[ys:ye, xs:xe] = False
        assert np.all(full[outside] < -0.99)
        nonempty += bool(mask.any())
        # the rows the limited warp computes are the full warp's rows, bit for bit
        if ye > 0:
            np.testing.assert_array_equal(warp_mask_to_frame(prob, x0, y0, side, w, h, rows=ye), full[:ye])
    assert nonempty > 100


def test_footprint_bounds_the_patch():
    # side = 127 px at (10.2, 20.7) in a 200x100 frame: columns ~10..137, rows ~20..147
    xs, ys, xe, ye = mask_footprint(10.2, 20.7, 127.0, 200, 100)
    assert xs <= 9 and 137 <= xe <= 142 and ys <= 19 and ye == 100
    assert mask_footprint(300.0, 10.0, 50.0, 200, 100)[0] == 200  # right of the frame: empty
    mask, region = mask_in_frame(np.ones((127, 127), np.float32), 300.0, 10.0, 50.0, 200, 100, 0.5)
    assert region == (0, 0, 0, 0) and not mask.any()


def test_threshold_is_strict():
    prob = np.full((127, 127), 0.5, np.float32)
    # the patch covers the whole frame: every pixel samples a constant 0.5
    warped = warp_mask_to_frame(prob, -20.0, -20.0, 200.0, 100, 80)
    assert np.all(warped == 0.5)
    assert not mask_in_frame(prob, -20.0, -20.0, 200.0, 100, 80, 0.5)[0].any()
    assert mask_in_frame(prob, -20.0, -20.0, 200.0, 100, 80, 0.49)[0].all()


# ----------------------------------------------------------------------------- rotated box


def _rotated_rect_mask(w, h, center, size, angle_deg):
    mask = np.zeros((h, w), np.uint8)
    corners = cv2.boxPoints((center, size, angle_deg))
    cv2.fillPoly(mask, [np.round(corners).astype(np.int32)], 1)
    return mask


def test_rotated_box_of_a_rotated_rectangle():
    mask = _rotated_rect_mask(200, 160, (100, 80), (80, 30), 30)
    box = rotated_box_from_mask(mask, (0.0, 0.0), (1.0, 1.0))
    assert (box.cx, box.cy) == pytest.approx((100, 80), abs=1.0)
    assert sorted((box.width, box.height)) == pytest.approx([30, 80], abs=2.0)
    long_side = box.angle if box.width > box.height else box.angle + math.pi / 2
    long_side = (long_side + math.pi / 2) % math.pi - math.pi / 2
    assert long_side == pytest.approx(math.radians(30), abs=math.radians(2))


def test_rotated_box_uses_the_largest_contour_and_a_region():
    mask = np.zeros((100, 120), np.uint8)
    mask[10:20, 10:30] = 1  # 20x10 blob, contour area 19*9 = 171
    mask[50:90, 60:100] = 1  # 40x40 blob, area 39*39 = 1521
    box = rotated_box_from_mask(mask, (0.0, 0.0), (1.0, 1.0))
    assert (box.cx, box.cy) == pytest.approx((79.5, 69.5))
    region_box = rotated_box_from_mask(mask, (0.0, 0.0), (1.0, 1.0), region=(5, 5, 110, 95))
    np.testing.assert_array_equal(region_box.corners, box.corners)


def test_rotated_box_falls_back_to_the_state_box():
    empty = np.zeros((50, 60), np.uint8)
    box = rotated_box_from_mask(empty, (30.0, 20.0), (12.0, 8.0))
    assert (box.cx, box.cy, box.width, box.height, box.angle) == (30.0, 20.0, 12.0, 8.0, 0.0)
    np.testing.assert_array_equal(box.corners, [[24, 16], [36, 16], [36, 24], [24, 24]])
    tiny = empty.copy()
    tiny[10:21, 10:21] = 1  # 11x11 pixels: contour through pixel centres, area 10*10 = 100, not > 100
    assert rotated_box_from_mask(tiny, (30.0, 20.0), (12.0, 8.0)).cx == 30.0
    tiny[10:22, 10:22] = 1  # area 121 > 100
    assert rotated_box_from_mask(tiny, (30.0, 20.0), (12.0, 8.0)).cx == pytest.approx(15.5)


# ----------------------------------------------------------------------------- inputs


def test_validate_box_returns_centre_and_size():
    assert validate_box((10, 20, 31, 41), 160, 120) == (25.5, 40.5, 31.0, 41.0)
    assert validate_box(np.array([0.1, 0.2, 1.2, 1.3]), 10, 10) == (0.1 + 0.6, 0.2 + 0.65, 1.2, 1.3)
    with pytest.raises(InvalidBoxError, match="1 px"):
        validate_box((1, 1, 0.5, 3), 10, 10)


def test_validate_box_clips_a_box_partly_outside():
    # x in [-10, 30] -> [0, 30]; y in [100, 140] -> [100, 120]
    assert validate_box((-10, 100, 40, 40), 160, 120) == (15.0, 110.0, 30.0, 20.0)


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ((1, 2, 3), "4 numbers"),
        ((1, 2, 3, 4, 5), "4 numbers"),
        (("a", 2, 3, 4), "4 numbers"),
        ((1, float("nan"), 3, 4), "finite"),
        ((1, 2, float("inf"), 4), "finite"),
        ((1, 2, 0, 4), "> 0"),
        ((1, 2, 5, -4), "> 0"),
        ((160, 10, 5, 5), "entirely outside"),
        ((-5, 10, 5, 5), "entirely outside"),
        ((10, -30, 5, 20), "entirely outside"),
        ((159.5, 10, 5, 5), "1 px"),
    ],
)
def test_validate_box_rejects(box, message):
    with pytest.raises(InvalidBoxError, match=message):
        validate_box(box, 160, 120)
    assert issubclass(InvalidBoxError, ValueError)


def test_to_bgr_conversions():
    rng = np.random.default_rng(6)
    bgr = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    assert to_bgr(bgr) is bgr
    np.testing.assert_array_equal(to_bgr(np.ascontiguousarray(bgr[..., ::-1]), "rgb"), bgr)
    np.testing.assert_array_equal(to_bgr(bgr[..., ::-1], "rgb"), bgr)  # non-contiguous view
    strided = to_bgr(bgr[::2, ::2])
    assert strided.flags.c_contiguous
    np.testing.assert_array_equal(strided, bgr[::2, ::2])
    gray = bgr[..., 0].copy()
    for mono in (gray, gray[:, :, None]):
        out = to_bgr(mono, "mono")
        assert out.shape == (6, 8, 3)
        np.testing.assert_array_equal(out, np.repeat(gray[:, :, None], 3, axis=2))


@pytest.mark.parametrize(
    ("frame", "order", "message"),
    [
        (np.zeros((0, 5, 3), np.uint8), "bgr", "empty"),
        (np.zeros((4, 5, 3), np.float32), "bgr", "uint8"),
        (np.zeros((4, 5, 3), np.uint16), "bgr", "uint8"),
        (np.zeros((4, 5), np.uint8), "bgr", "HxWx3"),
        (np.zeros((4, 5, 4), np.uint8), "rgb", "HxWx3"),
        (np.zeros((4, 5, 3), np.uint8), "mono", "HxW or HxWx1"),
        (np.zeros((2, 4, 5, 3), np.uint8), "bgr", "HxWx3"),
        ([[1, 2], [3, 4]], "mono", "numpy array"),
    ],
)
def test_to_bgr_rejects(frame, order, message):
    with pytest.raises(InvalidFrameError, match=message):
        to_bgr(frame, order)


def test_to_bgr_rejects_an_unknown_colour_order():
    with pytest.raises(ValueError, match="color_order"):
        to_bgr(np.zeros((4, 5, 3), np.uint8), "bgra")
