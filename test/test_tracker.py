"""SiamMaskTracker on a real (randomly initialised) SiamMask, CPU.

The random network's outputs are huge (unnormalised 0..255 inputs through a random
ResNet-50), so most tests "tame" it: the neck's norm scale is shrunk so the heads see
features of order one, and the final 1x1 convs of the cls/loc heads get zero weights and
chosen biases. The network then really runs, but its foreground logit is a chosen L
everywhere (score sigmoid(L)) and its boxes are exactly the anchors (plus chosen
offsets), so the tracker's choice and update can be worked out here by hand.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from siammask_ros.model import build_siammask
from siammask_ros.tracker import (
    InvalidBoxError,
    InvalidFrameError,
    LongTermConfig,
    RotatedBox,
    SiamMaskTracker,
    TrackerConfig,
    TrackResult,
    TrackState,
)

W, H = 160, 120
BOX = (50.0, 40.0, 30.0, 20.0)  # centre (65, 50), size (30, 20)
ANCHOR_SHAPES = [(104, 32), (88, 40), (64, 64), (40, 80), (32, 96)]


@pytest.fixture(scope="module")
def _model_and_weights():
    torch.manual_seed(0)
    model = build_siammask()
    return model, {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture
def model(_model_and_weights):
    """The module's random model, back to its initial weights for every test."""
    net, weights = _model_and_weights
    net.load_state_dict(weights)
    return net


def _frame(seed: int = 0, w: int = W, h: int = H) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@torch.no_grad()
def _tame(model) -> None:
    model.neck.downsample[1].weight.mul_(1e-5)


@torch.no_grad()
def _set_heads(model, fg_prob: float, loc_bias=(0.0, 0.0, 0.0, 0.0), mask_logit: float | None = None) -> None:
    """Every position: foreground probability ``fg_prob``; offsets ``loc_bias`` (dx, dy,
    dw, dh) for every anchor; optionally a constant refined-mask logit."""
    cls = model.rpn_head["cls"].head[-1]
    cls.weight.zero_()
    cls.bias[:5] = 0.0
    cls.bias[5:] = math.log(fg_prob / (1 - fg_prob))
    loc = model.rpn_head["loc"].head[-1]
    loc.weight.zero_()
    for k, value in enumerate(loc_bias):
        loc.bias[5 * k : 5 * k + 5] = value
    if mask_logit is not None:
        post = model.refine_head.post2
        post.weight.zero_()
        post.bias.fill_(mask_logit)


def _spy(monkeypatch, model, name: str) -> list:
    """Record the arguments and result of ``model.<name>`` (the real method still runs)."""
    calls = []
    original = getattr(model, name)

    def spy(*args):
        out = original(*args)
        calls.append((args, out))
        return out

    monkeypatch.setattr(model, name, spy)
    return calls


def _assert_same_box(a: RotatedBox, b: RotatedBox) -> None:
    assert (a.cx, a.cy, a.width, a.height, a.angle) == (b.cx, b.cy, b.width, b.height, b.angle)
    np.testing.assert_array_equal(a.corners, b.corners)


def _expected_anchor_step(size, cfg: TrackerConfig, fg_prob: float):
    """Hand-derived step when all scores are equal and all boxes are the anchors:
    the best anchor (by penalty) at the centre cell wins; the centre stays."""
    w, h = size
    s_x = math.sqrt((w + 0.5 * (w + h)) * (h + 0.5 * (w + h)))
    scale = 127 / s_x
    tw, th = w * scale, h * scale

    def padded(a, b):
        return math.sqrt((a + (a + b) / 2) * (b + (a + b) / 2))

    penalties = []
    for aw, ah in ANCHOR_SHAPES:
        s_c = max(padded(aw, ah) / padded(tw, th), padded(tw, th) / padded(aw, ah))
        r = (tw / th) / (aw / ah)
        r_c = max(r, 1 / r)
        penalties.append(math.exp(-(r_c * s_c - 1) * cfg.penalty_k))
    best = int(np.argmax(penalties))
    lr = penalties[best] * fg_prob * cfg.lr
    aw, ah = ANCHOR_SHAPES[best]
    return best, ((1 - lr) * w + lr * aw / scale, (1 - lr) * h + lr * ah / scale)


# ----------------------------------------------------------------------------- lifecycle


def test_track_before_initialize_raises(model):
    tracker = SiamMaskTracker(model)
    assert tracker.state is TrackState.IDLE and not tracker.is_initialized
    assert tracker.center is None and tracker.size is None
    with pytest.raises(RuntimeError, match="initialize"):
        tracker.track(_frame())


def test_initialize_reports_the_box_and_reset_goes_idle(model):
    tracker = SiamMaskTracker(model)
    result = tracker.initialize(_frame(), (10, 20, 31, 41))
    assert isinstance(result, TrackResult)
    assert result.state is TrackState.TRACKING and tracker.state is TrackState.TRACKING
    assert result.confidence == 1.0
    assert result.center == (25.5, 40.5) and result.size == (31.0, 41.0)
    assert tracker.center == (25.5, 40.5) and tracker.size == (31.0, 41.0)
    _assert_same_box(result.rotated_box, RotatedBox.axis_aligned(25.5, 40.5, 31.0, 41.0))
    np.testing.assert_array_equal(result.rotated_box.corners, [[10, 20], [41, 20], [41, 61], [10, 61]])
    assert result.mask.shape == (H, W) and result.mask.dtype == np.uint8 and not result.mask.any()
    assert result.search_size == 127
    tracker.reset()
    assert tracker.state is TrackState.IDLE and not tracker.is_initialized
    with pytest.raises(RuntimeError, match="initialize"):
        tracker.track(_frame())


def test_template_crop_rounds_the_context_side_and_pads_with_the_truncated_mean(model, monkeypatch):
    calls = _spy(monkeypatch, model, "template")
    frame = _frame(3)
    SiamMaskTracker(model).initialize(frame, (2, 3, 30, 20))
    (z,), _ = calls[0]
    # centre (17, 13); s_z = round(sqrt(55 * 45)) = round(49.75) = 50; c = 25.5:
    # xmin = round(-8.5) = -8 (tie to even), ymin = round(-12.5) = -12
    avg = np.mean(frame, axis=(0, 1)).astype(np.uint8)
    padded = np.empty((H + 50, W + 50, 3), np.uint8)
    padded[:] = avg
    padded[12 : 12 + H, 8 : 8 + W] = frame
    expected = cv2.resize(padded[0:50, 0:50], (127, 127), interpolation=cv2.INTER_LINEAR)
    assert z.shape == (1, 3, 127, 127) and z.dtype == torch.float32
    np.testing.assert_array_equal(z[0].permute(1, 2, 0).numpy(), expected.astype(np.float32))


@pytest.mark.parametrize(
    ("box", "error"),
    [
        ((1, 2, 3), "4 numbers"),
        ((1, 2, float("nan"), 4), "finite"),
        ((1, 2, -3, 4), "> 0"),
        ((500, 2, 3, 4), "outside"),
    ],
)
def test_initialize_rejects_bad_boxes(model, box, error):
    tracker = SiamMaskTracker(model)
    with pytest.raises(InvalidBoxError, match=error):
        tracker.initialize(_frame(), box)
    assert tracker.state is TrackState.IDLE


def test_bad_frames_are_rejected(model):
    tracker = SiamMaskTracker(model)
    with pytest.raises(InvalidFrameError, match="uint8"):
        tracker.initialize(_frame().astype(np.float32), BOX)
    with pytest.raises(InvalidFrameError, match="HxWx3"):
        tracker.initialize(np.zeros((H, W, 4), np.uint8), BOX)
    with pytest.raises(InvalidFrameError, match="empty"):
        tracker.initialize(np.zeros((0, W, 3), np.uint8), BOX)
    tracker.initialize(_frame(), BOX)
    with pytest.raises(InvalidFrameError, match="HxWx3"):
        tracker.track(np.zeros((H, W), np.uint8))
    assert tracker.state is TrackState.TRACKING  # a bad frame leaves the sequence alone


# ----------------------------------------------------------------------------- the step


def test_update_follows_the_hand_derived_step(model, monkeypatch):
    _tame(model)
    _set_heads(model, fg_prob=0.999)
    refine_calls = _spy(monkeypatch, model, "refine_mask")
    cfg = TrackerConfig()
    tracker = SiamMaskTracker(model, cfg)
    tracker.initialize(_frame(), BOX)
    result = tracker.track(_frame(1))
    best_anchor, size = _expected_anchor_step((30.0, 20.0), cfg, 0.999)
    assert best_anchor == 1  # (88, 40) is closest to a 30x20 target's shape and scale
    assert result.center == (65.0, 50.0)
    assert result.size == pytest.approx(size, rel=1e-6)
    assert result.confidence == pytest.approx(0.999, rel=1e-6)
    assert result.search_size == 255 and result.state is TrackState.TRACKING
    (_, row, col), _ = refine_calls[0]
    assert (row, col) == (12, 12)


def test_mask_lands_on_the_refined_patch_and_state_is_clipped(model):
    _tame(model)
    # a full refined patch; centre pushed far right/up, size shrunk below the minimum
    _set_heads(model, fg_prob=0.999, loc_bias=(3.0, -6.0, -5.0, -5.0), mask_logit=20.0)
    cfg = TrackerConfig(penalty_k=0.0, lr=1.0)  # all anchors tie: the first one, (104, 32), wins
    tracker = SiamMaskTracker(model, cfg)
    tracker.initialize(_frame(), BOX)
    result = tracker.track(_frame(1))
    scale = 127 / math.sqrt(2475)
    assert 65 + 3 * 104 / scale > W and 50 - 6 * 32 / scale < 0
    assert result.center == (float(W), 0.0)
    assert result.size == (10.0, 10.0)
    # crop R = round(sqrt(2475) * 255 / 127) = round(99.89) = 100, centre cell: the
    # patch is the 127 * 100 / 255 = 49.8 px square centred on the old centre (65, 50)
    ys, xs = np.nonzero(result.mask)
    assert set(np.unique(result.mask)) == {0, 1}
    half = 127 * 100 / 255 / 2
    assert xs.min() == pytest.approx(65 - half, abs=1.5) and xs.max() == pytest.approx(65 + half, abs=1.5)
    assert ys.min() == pytest.approx(50 - half, abs=1.5) and ys.max() == pytest.approx(50 + half, abs=1.5)
    box = result.rotated_box
    assert (box.cx, box.cy) == pytest.approx((65, 50), abs=1.0)
    assert box.width == pytest.approx(2 * half, abs=2.0) and box.height == pytest.approx(2 * half, abs=2.0)


def test_empty_mask_falls_back_to_the_updated_state_box_before_clipping(model):
    _tame(model)
    _set_heads(model, fg_prob=0.999, loc_bias=(3.0, 0.0, 0.0, 0.0), mask_logit=-20.0)
    cfg = TrackerConfig(penalty_k=0.0, lr=1.0)
    tracker = SiamMaskTracker(model, cfg)
    tracker.initialize(_frame(), BOX)
    result = tracker.track(_frame(1))
    scale = 127 / math.sqrt(2475)
    lr = 0.999
    unclipped_x = 65 + 3 * 104 / scale
    size = ((1 - lr) * 30 + lr * 104 / scale, (1 - lr) * 20 + lr * 32 / scale)
    assert not result.mask.any()
    assert result.center[0] == W  # the state is clipped ...
    box = result.rotated_box  # ... the fallback box is the reference's unclipped one
    assert (box.cx, box.cy, box.angle) == pytest.approx((unclipped_x, 50.0, 0.0), rel=1e-6)
    assert (box.width, box.height) == pytest.approx(size, rel=1e-6)


# ----------------------------------------------------------------------------- lost / found


def test_short_term_mode_reports_lost_with_hysteresis_but_keeps_searching_255(model):
    _tame(model)
    cfg = TrackerConfig()  # long_term disabled
    tracker = SiamMaskTracker(model, cfg)
    tracker.initialize(_frame(), BOX)
    states, sizes = [], []
    for prob in (0.5, 0.9, 0.999, 0.9):
        _set_heads(model, fg_prob=prob)
        before = tracker.size
        result = tracker.track(_frame(1))
        states.append(result.state)
        sizes.append((before, result.size))
        assert result.search_size == 255
    L, T = TrackState.LOST, TrackState.TRACKING
    # < low: lost; between: kept lost; > high: found; between: kept tracking
    assert states == [L, L, T, T]
    # below the low threshold the published SiamMask still updates
    _, expected = _expected_anchor_step((30.0, 20.0), cfg, 0.5)
    assert sizes[0][1] == pytest.approx(expected, rel=1e-6)


def test_long_term_mode_holds_while_lost_and_searches_831(model, monkeypatch):
    _tame(model)
    cfg = TrackerConfig(long_term=LongTermConfig(enabled=True))
    track_calls = _spy(monkeypatch, model, "track")
    refine_calls = _spy(monkeypatch, model, "refine_mask")
    tracker = SiamMaskTracker(model, cfg)
    tracker.initialize(_frame(), BOX)

    # below confidence_low: lost, state held, nothing published (even with a full mask)
    _set_heads(model, fg_prob=0.5, mask_logit=20.0)
    lost = tracker.track(_frame(2))
    assert lost.state is TrackState.LOST and lost.search_size == 255
    assert lost.confidence == pytest.approx(0.5, rel=1e-6)
    assert lost.center == (65.0, 50.0) and lost.size == (30.0, 20.0)
    assert not lost.mask.any()
    _assert_same_box(lost.rotated_box, RotatedBox.axis_aligned(65.0, 50.0, 30.0, 20.0))
    assert not refine_calls  # no refinement for a held frame

    # while lost: an 831 search at the same image scale, a 97x97 score map, almost no
    # window; a confident answer updates the state and ends the lost state
    _set_heads(model, fg_prob=0.999, mask_logit=20.0)
    found = tracker.track(_frame(3))
    (x, _), out = track_calls[-1]
    assert tuple(x.shape) == (1, 3, 831, 831)
    assert tuple(out.cls.shape) == (1, 10, 97, 97)
    assert found.search_size == 831 and found.state is TrackState.TRACKING
    (_, row, col), _ = refine_calls[-1]
    assert (row, col) == (48, 48)
    assert found.center == (65.0, 50.0)
    assert found.size == pytest.approx(_expected_anchor_step((30.0, 20.0), cfg, 0.999)[1], rel=1e-6)
    # the full refined patch of the centre cell: side 127 * R / 831 with
    # R = round(sqrt(2475) * 831 / 127) = round(325.5..) = 326 -> 49.8 px around (65, 50)
    ys, xs = np.nonzero(found.mask)
    half = 127 * 326 / 831 / 2
    assert (xs.min(), xs.max()) == pytest.approx((65 - half, 65 + half), abs=1.5)
    assert (ys.min(), ys.max()) == pytest.approx((50 - half, 50 + half), abs=1.5)


def test_mark_lost_switches_to_the_long_term_search(model, monkeypatch):
    _tame(model)
    _set_heads(model, fg_prob=0.9, mask_logit=20.0)  # between the thresholds: keeps the state
    track_calls = _spy(monkeypatch, model, "track")
    tracker = SiamMaskTracker(model, TrackerConfig(long_term=LongTermConfig(enabled=True)))
    with pytest.raises(RuntimeError, match="initialize"):
        tracker.mark_lost()
    tracker.initialize(_frame(), BOX)
    assert tracker.track(_frame(2)).search_size == 255
    tracker.mark_lost()
    assert tracker.state is TrackState.LOST
    result = tracker.track(_frame(3))
    assert result.search_size == 831 and result.state is TrackState.LOST
    (x, _), _ = track_calls[-1]
    assert tuple(x.shape) == (1, 3, 831, 831)


def test_non_finite_network_output_leaves_the_state_alone(model):
    _tame(model)
    _set_heads(model, fg_prob=0.999, loc_bias=(0.0, 0.0, 1e4, 0.0))  # exp(1e4): every width is inf
    tracker = SiamMaskTracker(model)
    tracker.initialize(_frame(), BOX)
    result = tracker.track(_frame(1))
    assert result.center == (65.0, 50.0) and result.size == (30.0, 20.0)
    assert not result.mask.any()
    assert all(math.isfinite(v) for v in (*result.center, *result.size, result.confidence))


# ----------------------------------------------------------------------------- inputs


def test_rgb_and_mono_frames_match_their_bgr_equivalents(model):
    _tame(model)
    frames = [_frame(i) for i in range(2)]
    bgr = SiamMaskTracker(model)
    rgb = SiamMaskTracker(model)
    bgr.initialize(frames[0], BOX)
    rgb.initialize(frames[0][..., ::-1], BOX, color_order="rgb")
    a = bgr.track(frames[1])
    b = rgb.track(np.ascontiguousarray(frames[1][..., ::-1]), color_order="rgb")
    assert a.center == b.center and a.size == b.size and a.confidence == b.confidence
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.center != (65.0, 50.0)  # the random heads did move the target

    gray = frames[1][..., 1].copy()
    mono = SiamMaskTracker(model)
    replicated = SiamMaskTracker(model)
    mono.initialize(gray, BOX, color_order="mono")
    replicated.initialize(np.repeat(gray[:, :, None], 3, axis=2), BOX)
    a = mono.track(gray[:, :, None], color_order="mono")
    b = replicated.track(np.repeat(gray[:, :, None], 3, axis=2))
    assert a.center == b.center and a.size == b.size
    np.testing.assert_array_equal(a.mask, b.mask)


def test_resolution_change_rescales_the_state(model):
    _tame(model)
    _set_heads(model, fg_prob=0.999)
    tracker = SiamMaskTracker(model)
    tracker.initialize(_frame(), BOX)
    result = tracker.track(_frame(1, w=2 * W, h=3 * H))
    assert result.center == (130.0, 150.0)  # the centre does not move: boxes are the anchors
    assert result.mask.shape == (3 * H, 2 * W)
    _, expected = _expected_anchor_step((60.0, 60.0), TrackerConfig(), 0.999)
    assert result.size == pytest.approx(expected, rel=1e-6)


# ----------------------------------------------------------------------------- end to end


def test_random_network_sequence_end_to_end(model):
    _tame(model)  # random heads, finite outputs
    rng = np.random.default_rng(7)
    tracker = SiamMaskTracker(model, TrackerConfig())
    background = rng.integers(0, 80, (H, W, 3), dtype=np.uint8)
    results = []
    for t in range(3):
        frame = background.copy()
        frame[40 + 2 * t : 60 + 2 * t, 50 + 3 * t : 80 + 3 * t] = (30, 200, 240)
        results.append(tracker.track(frame) if t else tracker.initialize(frame, BOX))
    for result in results[1:]:
        assert isinstance(result, TrackResult)
        assert result.state in (TrackState.TRACKING, TrackState.LOST)
        assert isinstance(result.confidence, float) and 0.0 <= result.confidence <= 1.0
        assert all(isinstance(v, float) for v in (*result.center, *result.size))
        assert 0 <= result.center[0] <= W and 0 <= result.center[1] <= H
        assert 10 <= result.size[0] <= W and 10 <= result.size[1] <= H
        assert result.mask.shape == (H, W) and result.mask.dtype == np.uint8
        assert set(np.unique(result.mask)) <= {0, 1}
        assert isinstance(result.rotated_box, RotatedBox) and result.rotated_box.corners.shape == (4, 2)
        assert np.all(np.isfinite(result.rotated_box.corners))
        assert result.search_size == 255
    assert any(r.mask.any() for r in results[1:])


def test_wide_search_every_n_frames_while_lost_and_the_held_position_in_between(model):
    _tame(model)
    _set_heads(model, fg_prob=0.5, mask_logit=20.0)  # below confidence_low: lost, state held
    cfg = TrackerConfig(long_term=LongTermConfig(enabled=True, search_size=383, wide_search_every=3))
    tracker = SiamMaskTracker(model, cfg)
    tracker.initialize(_frame(), BOX)
    sizes = [tracker.track(_frame(k)).search_size for k in range(2, 10)]
    # declared lost on the first frame, then wide on every third lost step
    assert sizes == [255, 383, 255, 255, 383, 255, 255, 383]
    assert tracker.state is TrackState.LOST and tracker.center == (65.0, 50.0)
    tracker.mark_lost()  # an outside cue searches wide on the next frame
    assert tracker.track(_frame(11)).search_size == 383
    _set_heads(model, fg_prob=0.999, mask_logit=20.0)
    found = tracker.track(_frame(12))  # a held-position frame can find the target again
    assert (found.search_size, found.state) == (255, TrackState.TRACKING)
    assert tracker.track(_frame(13)).search_size == 255


def test_wide_search_every_must_be_a_positive_integer():
    with pytest.raises(ValueError, match="wide_search_every must be an integer >= 1, got 0"):
        LongTermConfig(wide_search_every=0)
