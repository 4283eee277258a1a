"""What a frame publishes as its rotated box: the mask's box, fitted to the box branch's size
(``rotated_box_extent``), or the box branch's box where the two disagree (the fallback)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from synthetic_camera import sliding_block

from siammask_ros.model import build_siammask, default_weights_path
from siammask_ros.tracker.config import TrackerConfig, preset
from siammask_ros.tracker.result import RotatedBox
from siammask_ros.tracker.tracker import SiamMaskTracker


def test_the_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="box_fallback_area_ratio must be in"):
        TrackerConfig(box_fallback_area_ratio=1.5)
    with pytest.raises(ValueError, match="rotated_box_extent must be one of"):
        TrackerConfig(rotated_box_extent="state")
    # The published presets keep the mask's box as it is.
    assert preset("vot").box_fallback_area_ratio == 0.0 and preset("vot").rotated_box_extent == "mask"


@pytest.fixture(scope="module")
def model():
    return build_siammask("siammask_mnv2", weights=default_weights_path(), optimize=True)


def _scene(index: int) -> np.ndarray:
    return sliding_block(index, seed=0)


def _run(model, ratio: float, extent: str = "mask") -> list:
    config = dataclasses.replace(preset("vot"), box_fallback_area_ratio=ratio, rotated_box_extent=extent)
    tracker = SiamMaskTracker(model, config)
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
    from siammask_ros.tracker.geometry import mask_box_agreement
    from siammask_ros.tracker.tracker import _published_box

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
        assert mask_box_agreement(right, framing) > 0.9
    on, off = TrackerConfig(box_fallback_area_ratio=RATIO), TrackerConfig(box_fallback_area_ratio=0.0)
    assert _published_box(right, (100.0, 100.0), (20.0, 40.0), on) is right
    upright = RotatedBox.axis_aligned(100, 100, 20, 40).corners
    for wrong in (turned(40, 60), turned(10, 20)):  # spilling onto a neighbour (3x), a fragment (1/4)
        assert mask_box_agreement(wrong, (20.0, 40.0)) < RATIO
        np.testing.assert_allclose(_published_box(wrong, (100.0, 100.0), (20.0, 40.0), on).corners, upright)
        assert _published_box(wrong, (100.0, 100.0), (20.0, 40.0), off) is wrong


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


def _turned(width: float, height: float, angle: float, center=(100.0, 100.0)) -> RotatedBox:
    turn = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float) * (width / 2, height / 2)
    return RotatedBox.from_corners(corners @ turn + np.asarray(center))


@pytest.mark.parametrize("angle", [0.0, 0.4, -1.0])
def test_fit_to_box_keeps_shape_and_angle_and_takes_centre_and_hull_area(angle: float) -> None:
    from siammask_ros.tracker.geometry import fit_to_box

    mask_box = _turned(20, 40, angle)
    fitted = fit_to_box(mask_box, (150.0, 80.0), (30.0, 60.0))
    assert fitted.angle == pytest.approx(mask_box.angle)
    assert fitted.width / fitted.height == pytest.approx(mask_box.width / mask_box.height)
    assert (fitted.cx, fitted.cy) == pytest.approx((150.0, 80.0))
    assert np.prod(np.ptp(fitted.corners, axis=0)) == pytest.approx(30.0 * 60.0)
    if angle == 0.0:  # an upright box of the state's aspect becomes the state's box
        np.testing.assert_allclose(fitted.corners, RotatedBox.axis_aligned(150, 80, 30, 60).corners, atol=1e-9)


def test_fit_to_box_of_a_degenerate_box_is_the_state_box() -> None:
    from siammask_ros.tracker.geometry import fit_to_box

    flat = RotatedBox.from_corners(np.array([[10, 10], [30, 10], [30, 10], [10, 10]], float))
    np.testing.assert_allclose(fit_to_box(flat, (50.0, 40.0), (8.0, 6.0)).corners,
                               RotatedBox.axis_aligned(50, 40, 8, 6).corners)  # fmt: skip


def test_box_branch_extent_moves_only_the_published_box(model) -> None:
    from siammask_ros.tracker.geometry import fit_to_box

    mask, fitted = _run(model, 0.0, "mask"), _run(model, 0.0, "box_branch")
    for a, b in zip(mask, fitted):
        assert a.center == b.center and a.size == b.size and a.confidence == b.confidence
        np.testing.assert_array_equal(a.mask, b.mask)
        np.testing.assert_allclose(b.rotated_box.corners, fit_to_box(a.rotated_box, a.center, a.size).corners)
    assert any(not np.allclose(a.rotated_box.corners, b.rotated_box.corners) for a, b in zip(mask, fitted))


def test_auto_extent_is_the_box_branch_for_the_bundled_model_only() -> None:
    from siammask_ros.ros.params import PARAMETERS, tracker_config
    from siammask_ros.tracker.config import rotated_box_extent_for

    values = {spec.name: spec.default for spec in PARAMETERS}
    values.update({"seg_threshold": 0.3, "penalty_k": 0.04, "window_influence": 0.42, "lr": 0.25})
    assert tracker_config(values, "siammask_mnv2").rotated_box_extent == "box_branch"
    assert tracker_config(values, "siammask_r50").rotated_box_extent == "mask"  # the reference stays the reference
    assert tracker_config(values, None).rotated_box_extent == "mask"  # before the model is known
    assert tracker_config({**values, "rotated_box.extent": "mask"}, "siammask_mnv2").rotated_box_extent == "mask"
    assert tracker_config({**values, "rotated_box.extent": "box_branch"}, "siammask_r50").rotated_box_extent == "box_branch"
    with pytest.raises(ValueError, match="auto, mask or box_branch"):
        rotated_box_extent_for("siammask_mnv2", "state")
