"""Evaluation: metrics against hand-computed numbers, and the held-out synthetic sequences."""

from __future__ import annotations

import numpy as np
import pytest

from siammask_ros.eval import (
    SUCCESS_THRESHOLDS,
    SequenceSpec,
    box_iou_xywh,
    make_sequence,
    mask_iou,
    redetection_frames,
    success_auc,
    success_curve,
)
from siammask_ros.train.sources import find_source


def test_box_iou_by_hand() -> None:
    # Overlap 5x5 = 25, union 100 + 100 - 25 = 175.
    assert box_iou_xywh((0, 0, 10, 10), (5, 5, 10, 10)) == pytest.approx(25 / 175)
    assert box_iou_xywh((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou_xywh((0, 0, 10, 10), (10, 0, 10, 10)) == 0.0  # touching edges
    # A 4x2 box inside an 8x4 box: 8 / 32.
    assert box_iou_xywh((2, 1, 4, 2), (0, 0, 8, 4)) == pytest.approx(0.25)
    assert box_iou_xywh((0, 0, 0, 10), (0, 0, 10, 10)) == 0.0  # empty box


def test_mask_iou_by_hand() -> None:
    a = np.zeros((4, 4), np.uint8)
    b = np.zeros((4, 4), np.uint8)
    a[0, 0:4] = 1  # 4 pixels
    b[0, 2:4] = 1
    b[1, 2:4] = 1  # 4 pixels, 2 shared -> 2 / 6
    assert mask_iou(a, b) == pytest.approx(2 / 6)
    assert mask_iou(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0  # DAVIS: empty vs empty
    assert mask_iou(a, np.zeros_like(a)) == 0.0
    with pytest.raises(ValueError, match="shapes"):
        mask_iou(a, np.zeros((2, 2)))


def test_success_curve_and_auc_by_hand() -> None:
    assert len(SUCCESS_THRESHOLDS) == 21 and SUCCESS_THRESHOLDS[1] == pytest.approx(0.05)
    ious = [0.0, 0.5, 1.0]
    curve = success_curve(ious)
    # IoU > t: at t = 0 .. 0.45 (10 thresholds) two of three frames, at 0.5 .. 0.95 (10) one,
    # at 1.0 none.
    np.testing.assert_allclose(curve[:10], 2 / 3)
    np.testing.assert_allclose(curve[10:20], 1 / 3)
    assert curve[20] == 0.0
    assert success_auc(ious) == pytest.approx((10 * 2 / 3 + 10 * 1 / 3) / 21)
    assert success_auc([1.0] * 5) == pytest.approx(20 / 21)
    assert success_auc([]) == 0.0


def test_redetection_frames() -> None:
    ious = [0.9, 0.0, 0.0, 0.2, 0.6, 0.7]
    assert redetection_frames(ious, start=1) == 3  # frame 4 is the first with IoU >= 0.5
    assert redetection_frames(ious, start=4) == 0
    assert redetection_frames([0.1, 0.2], start=0) is None


needs_vtest = pytest.mark.skipif(find_source("vtest.avi") is None, reason="opencv-doc (vtest.avi) is not installed")


@pytest.fixture(scope="module")
def pool():
    from siammask_ros.train.sources import EVAL_STILLS, load_pool

    try:
        return load_pool("eval", stills=EVAL_STILLS, videos=())
    except ValueError as exc:
        pytest.skip(str(exc))


@needs_vtest
def test_occlusion_sequence_ground_truth_is_consistent(pool) -> None:
    spec = SequenceSpec("vtest.avi", seed=0, occlusion=True, frames=40)
    seq = make_sequence(spec, pool)
    assert len(seq.frames) == len(seq.masks) == len(seq.boxes) == 40
    for mask, (x, y, w, h) in zip(seq.masks, seq.boxes):
        ys, xs = np.nonzero(mask)
        if xs.size:  # the visible part lies inside the whole-object box
            assert xs.min() >= x and xs.max() < x + w and ys.min() >= y and ys.max() < y + h
    hidden = np.flatnonzero(seq.visible == 0)
    assert hidden.size >= 2  # a full occlusion, not a graze
    assert seq.reappear is not None and seq.reappear > hidden.max() and seq.visible[seq.reappear] >= 0.5
    again = make_sequence(spec, pool)  # deterministic
    assert np.array_equal(again.frames[20], seq.frames[20]) and np.array_equal(again.boxes, seq.boxes)


@needs_vtest
def test_distractor_sequence_has_a_second_copy_close_by(pool) -> None:
    seq = make_sequence(SequenceSpec("vtest.avi", seed=1, distractor=True, frames=20), pool)
    plain = make_sequence(SequenceSpec("vtest.avi", seed=1, frames=20), pool)
    assert np.array_equal(seq.boxes, plain.boxes)  # same target path
    mid = 10
    x, y, w, h = (int(v) for v in seq.boxes[mid])
    outside = np.ones(seq.frames[mid].shape[:2], bool)
    outside[y : y + h, x : x + w] = False
    changed = np.abs(seq.frames[mid].astype(int) - plain.frames[mid].astype(int)).sum(2) > 0
    # The copy changes pixels outside the target's box, within two object sizes of it.
    ys, xs = np.nonzero(changed & outside)
    assert xs.size > 0.3 * w * h
    assert np.abs(xs.mean() - (x + w / 2)) < 2.5 * max(w, h)


@needs_vtest
def test_bundled_model_tracks_a_plain_held_out_sequence(pool) -> None:
    from siammask_ros.eval import run_sequence
    from siammask_ros.model import build_siammask, default_weights_path
    from siammask_ros.tracker.tracker import SiamMaskTracker

    weights = default_weights_path()
    if weights is None:
        pytest.skip("no bundled siammask_mnv2_default.pth in this checkout")
    seq = make_sequence(SequenceSpec("vtest.avi", seed=0, frames=20), pool)
    result = run_sequence(SiamMaskTracker(build_siammask(weights=weights)), seq)
    assert result.box_iou.size == 19 and result.failures == 0
    assert result.box_iou.mean() > 0.6 and result.mask_j.mean() > 0.6


def test_tune_settings_reach_long_term_fields_and_refuse_unknown_ones() -> None:
    from siammask_ros.eval.tune import _parse_setting, _with_setting
    from siammask_ros.tracker.config import TrackerConfig

    name, values = _parse_setting("long_term.confidence_low=0.85,0.9")
    assert (name, values) == ("long_term.confidence_low", [0.85, 0.9])
    tuned = _with_setting(TrackerConfig(), name, values[1])
    assert tuned.long_term.confidence_low == 0.9 and tuned.long_term.confidence_high == 0.998
    assert _with_setting(TrackerConfig(), "long_term.wide_search_every", 3.0).long_term.wide_search_every == 3
    assert _with_setting(TrackerConfig(), "lr", 0.4).lr == 0.4
    with pytest.raises(ValueError, match="unknown group 'foo'"):
        _with_setting(TrackerConfig(), "foo.lr", 0.4)
    with pytest.raises(ValueError, match="confidence_low < confidence_high"):
        _with_setting(TrackerConfig(), "long_term.confidence_low", 0.999)
