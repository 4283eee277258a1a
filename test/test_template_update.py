"""Template update (TrackerConfig.template_update_rate): off changes nothing; on moves the template
after confident frames only, the same way for one target and for several."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from synthetic_camera import sliding_block
import torch

from siammask_ros.model import build_siammask, default_weights_path
from siammask_ros.tracker.config import TrackerConfig, preset
from siammask_ros.tracker.multi import MultiTargetTracker
from siammask_ros.tracker.tracker import SiamMaskTracker


@pytest.fixture(scope="module")
def model():
    return build_siammask("siammask_mnv2", weights=default_weights_path(), optimize=True)


def _scene(index: int) -> np.ndarray:
    return sliding_block(index, seed=1)


def _config(rate: float, confidence: float = 0.5) -> TrackerConfig:
    return dataclasses.replace(preset("vot"), template_update_rate=rate, template_update_confidence=confidence)


def test_settings_are_checked_and_off_by_default() -> None:
    assert preset("vot").template_update_rate == 0.0
    with pytest.raises(ValueError, match="template_update_rate must be in"):
        TrackerConfig(template_update_rate=-0.1)


def test_off_leaves_the_template_alone(model) -> None:
    tracker = SiamMaskTracker(model, _config(0.0))
    tracker.initialize(_scene(0), (100, 90, 40, 60))
    before = tracker._seq.template.clone()
    for i in range(1, 4):
        tracker.track(_scene(i))
    assert torch.equal(tracker._seq.template, before)


def test_on_moves_the_template_only_after_confident_frames(model) -> None:
    tracker = SiamMaskTracker(model, _config(0.2))
    tracker.initialize(_scene(0), (100, 90, 40, 60))
    before = tracker._seq.template.clone()
    result = tracker.track(_scene(1))
    assert result.confidence >= 0.5
    assert not torch.equal(tracker._seq.template, before)

    strict = SiamMaskTracker(model, _config(0.2, confidence=1.0))  # no frame is that confident
    strict.initialize(_scene(0), (100, 90, 40, 60))
    before = strict._seq.template.clone()
    assert strict.track(_scene(1)).confidence < 1.0
    assert torch.equal(strict._seq.template, before)


def test_one_and_several_targets_update_alike(model) -> None:
    single = SiamMaskTracker(model, _config(0.2))
    multi = MultiTargetTracker(model, _config(0.2))
    single.initialize(_scene(0), (100, 90, 40, 60))
    multi.add_target(_scene(0), (100, 90, 40, 60), target_id="a")
    for i in range(1, 5):
        one = single.track(_scene(i))
        several = multi.track(_scene(i))["a"]
        assert one.center == pytest.approx(several.center, abs=1e-3)
        assert one.confidence == pytest.approx(several.confidence, abs=1e-4)
