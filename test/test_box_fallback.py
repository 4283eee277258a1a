"""The rotated-box fallback: the box branch's box where the mask's rotated box disagrees with it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from siammask_ros.model import build_siammask, default_weights_path
from siammask_ros.tracker.config import TrackerConfig, preset
from siammask_ros.tracker.result import RotatedBox
from siammask_ros.tracker.tracker import SiamMaskTracker


def test_the_setting_is_checked() -> None:
    with pytest.raises(ValueError, match="box_fallback_iou must be in"):
        TrackerConfig(box_fallback_iou=1.5)
    assert preset("vot").box_fallback_iou == 0.0  # the published presets keep the mask's box


@pytest.fixture(scope="module")
def model():
    return build_siammask("siammask_mnv2", weights=default_weights_path(), optimize=True)


def _scene(index: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 60, (240, 320, 3), dtype=np.uint8)
    x = 100 + 3 * index
    frame[90:150, x : x + 40] = (40, 160, 230)
    frame[100:110, x + 5 : x + 35] = (250, 250, 250)
    return frame


def _run(model, min_iou: float) -> list:
    tracker = SiamMaskTracker(model, dataclasses.replace(preset("vot"), box_fallback_iou=min_iou))
    tracker.initialize(_scene(0), (100, 90, 40, 60))
    return [tracker.track(_scene(i)) for i in range(1, 8)]


def test_fallback_one_always_publishes_the_box_branch_box(model) -> None:
    for result in _run(model, 1.0):
        expected = RotatedBox.axis_aligned(*result.center, *result.size)
        np.testing.assert_allclose(result.rotated_box.corners, expected.corners)


def test_fallback_off_keeps_the_mask_box_and_the_state(model) -> None:
    off, on = _run(model, 0.0), _run(model, 1.0)
    # The fallback changes only what is published, never the tracking state.
    for a, b in zip(off, on):
        assert a.center == b.center and a.size == b.size and a.confidence == b.confidence
    assert any(not np.allclose(r.rotated_box.corners, RotatedBox.axis_aligned(*r.center, *r.size).corners) for r in off)


def test_a_turned_box_that_fits_the_box_branch_is_kept_a_tilted_one_is_not() -> None:
    from siammask_ros.tracker.tracker import _box_branch_if_mask_disagrees

    # A 40x20 box turned 30 degrees, and the box branch framing it upright (its bounds).
    turned = RotatedBox.from_corners(
        np.array([[-20, -10], [20, -10], [20, 10], [-20, 10]], float)
        @ np.array([[np.cos(np.pi / 6), np.sin(np.pi / 6)], [-np.sin(np.pi / 6), np.cos(np.pi / 6)]])
        + 100.0
    )
    (x0, y0), (x1, y1) = turned.corners.min(axis=0), turned.corners.max(axis=0)
    bounds = ((x0 + x1) / 2, (y0 + y1) / 2), (x1 - x0, y1 - y0)
    assert _box_branch_if_mask_disagrees(turned, *bounds, min_iou=0.9) is turned
    # The same box on an upright 20x40 target: its bounds are far wider than the box branch's box.
    kept = _box_branch_if_mask_disagrees(turned, (100.0, 100.0), (20.0, 40.0), min_iou=0.6)
    np.testing.assert_allclose(kept.corners, RotatedBox.axis_aligned(100, 100, 20, 40).corners)
    assert _box_branch_if_mask_disagrees(turned, (100.0, 100.0), (20.0, 40.0), min_iou=0.0) is turned
