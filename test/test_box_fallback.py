"""The rotated-box fallback: the box branch's box where the mask's rotated box disagrees with it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from synthetic_camera import sliding_block

from siammask_ros.model import build_siammask, default_weights_path
from siammask_ros.tracker.config import TrackerConfig, preset
from siammask_ros.tracker.result import RotatedBox
from siammask_ros.tracker.tracker import SiamMaskTracker


def test_the_setting_is_checked() -> None:
    with pytest.raises(ValueError, match="box_fallback_area_ratio must be in"):
        TrackerConfig(box_fallback_area_ratio=1.5)
    assert preset("vot").box_fallback_area_ratio == 0.0  # the published presets keep the mask's box


@pytest.fixture(scope="module")
def model():
    return build_siammask("siammask_mnv2", weights=default_weights_path(), optimize=True)


def _scene(index: int) -> np.ndarray:
    return sliding_block(index, seed=0)


def _run(model, ratio: float) -> list:
    tracker = SiamMaskTracker(model, dataclasses.replace(preset("vot"), box_fallback_area_ratio=ratio))
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


def test_a_turned_box_of_the_right_area_is_kept_a_spilling_or_partial_one_is_not() -> None:
    from siammask_ros.tracker.config import DEFAULT_BOX_FALLBACK_AREA_RATIO as RATIO
    from siammask_ros.tracker.tracker import _box_branch_if_mask_disagrees

    def turned(width: float, height: float) -> RotatedBox:
        turn = np.array([[np.cos(np.pi / 3), np.sin(np.pi / 3)], [-np.sin(np.pi / 3), np.cos(np.pi / 3)]])
        corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float) * (width / 2, height / 2)
        return RotatedBox.from_corners(corners @ turn + 100.0)

    # The mask's box is a 20x40 target turned 60 degrees; one box branch frames the
    # target's own sides, another its upright hull (about 44.6 x 37.3): both agree.
    right = turned(20, 40)
    hull = tuple(float(v) for v in np.ptp(right.corners, axis=0))
    assert hull[0] * hull[1] > 2 * 20 * 40  # so the two framings are far apart in area
    for framing in ((20.0, 40.0), hull):
        assert _box_branch_if_mask_disagrees(right, (100.0, 100.0), framing, min_area_ratio=0.9) is right
    upright = RotatedBox.axis_aligned(100, 100, 20, 40).corners
    for wrong in (turned(40, 60), turned(10, 20)):  # spilling onto a neighbour (3x), a fragment (1/4)
        kept = _box_branch_if_mask_disagrees(wrong, (100.0, 100.0), (20.0, 40.0), min_area_ratio=RATIO)
        np.testing.assert_allclose(kept.corners, upright)
        assert _box_branch_if_mask_disagrees(wrong, (100.0, 100.0), (20.0, 40.0), min_area_ratio=0.0) is wrong


def test_auto_falls_back_for_the_bundled_model_only() -> None:
    from siammask_ros.ros.params import PARAMETERS, tracker_config
    from siammask_ros.tracker.config import DEFAULT_BOX_FALLBACK_AREA_RATIO, box_fallback_for

    values = {spec.name: spec.default for spec in PARAMETERS}
    values.update({"seg_threshold": 0.3, "penalty_k": 0.04, "window_influence": 0.42, "lr": 0.25})
    assert tracker_config(values, "siammask_mnv2").box_fallback_area_ratio == DEFAULT_BOX_FALLBACK_AREA_RATIO
    assert tracker_config(values, "siammask_r50").box_fallback_area_ratio == 0.0  # the reference stays the reference
    assert tracker_config(values, None).box_fallback_area_ratio == 0.0  # before the model is known
    on = tracker_config({**values, "rotated_box.fallback": "on"}, "siammask_r50")
    assert on.box_fallback_area_ratio == DEFAULT_BOX_FALLBACK_AREA_RATIO
    assert tracker_config({**values, "rotated_box.fallback": "off"}, "siammask_mnv2").box_fallback_area_ratio == 0.0
    with pytest.raises(ValueError, match="auto, on or off"):
        box_fallback_for("siammask_mnv2", "sometimes")
