"""Training pieces: data split, pair synthesis, label assignment, a real training step."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from siammask_ros.model import build_siammask, load_checkpoint
from siammask_ros.train import (
    EVAL_FILES,
    TRAIN_FILES,
    ImagePool,
    LabelConfig,
    TrainConfig,
    Trainer,
    anchor_targets,
    export_weights,
    load_pool,
    make_targets,
    mask_window,
    synthesise_pair,
)

# The anchor shapes of the reference (ratio 0.33, 0.5, 1, 2, 3 at base 8, scale 8).
SHAPES = [(104, 32), (88, 40), (64, 64), (40, 80), (32, 96)]
SQUARE = 2  # index of the 64x64 anchor
S = 25
C = 12  # centre cell


def _pool() -> ImagePool:
    """A small pool of textured images made here (the synthesiser's logic needs no real files)."""
    rng = np.random.default_rng(7)
    stills = []
    for i in range(3):
        image = cv2.resize(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), (320, 240), interpolation=cv2.INTER_CUBIC)
        cv2.circle(image, (100 + 40 * i, 120), 50, (40 * i, 200, 255 - 60 * i), -1)
        stills.append(image)
    clip = tuple(np.roll(stills[0], 3 * k, axis=1) for k in range(4))
    return ImagePool(tuple(stills), (clip,), ("a", "b", "c", "clip"))


# ---- data split -------------------------------------------------------------------------


def test_train_and_eval_files_are_disjoint_and_enforced() -> None:
    assert not TRAIN_FILES & EVAL_FILES
    assert {"vtest.avi", "bikes.mp4", "tree.avi"} <= EVAL_FILES
    with pytest.raises(ValueError, match="not train files"):
        load_pool("train", stills=["baboon.jpg"], videos=())
    with pytest.raises(ValueError, match="not eval files"):
        load_pool("eval", stills=[], videos=["bigbuckbunny.mp4"])


# ---- synthesis --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_pairs_have_consistent_masks_and_boxes(seed: int) -> None:
    sample = synthesise_pair(np.random.default_rng(seed), _pool())
    assert sample.template.shape == (127, 127, 3) and sample.template.dtype == np.uint8
    assert sample.search.shape == (255, 255, 3) and sample.search.dtype == np.uint8
    assert sample.mask.shape == sample.full_mask.shape == (255, 255)
    assert not np.any(sample.mask & ~sample.full_mask)  # visible part of the whole object
    if not sample.positive:
        assert not sample.mask.any() and sample.box == (0.0, 0.0, 0.0, 0.0)
        return
    ys, xs = np.nonzero(sample.full_mask)
    assert sample.box == (xs.min(), ys.min(), xs.max(), ys.max())
    centre = ((sample.box[0] + sample.box[2]) / 2, (sample.box[1] + sample.box[3]) / 2)
    # Shift of at most 56 per axis plus rounding of the rotated silhouette.
    assert abs(centre[0] - 127) < 70 and abs(centre[1] - 127) < 70


def test_pairs_are_a_function_of_the_seed() -> None:
    pool = _pool()
    a = synthesise_pair(np.random.default_rng(3), pool)
    b = synthesise_pair(np.random.default_rng(3), pool)
    c = synthesise_pair(np.random.default_rng(4), pool)
    assert np.array_equal(a.search, b.search) and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(a.search, c.search)


def test_template_object_size_follows_the_trackers_context_rule() -> None:
    # s_z = sqrt((w + p)(h + p)), p = (w + h) / 2 must come out as the 127 template side.
    from siammask_ros.train.synth import SynthObject, _object_size_for_template

    square = SynthObject(np.zeros((10, 10, 3), np.uint8), np.ones((10, 10), np.float32))
    assert _object_size_for_template(square, 127, 0.5) == pytest.approx((63.5, 63.5))  # 2w = 127
    wide = SynthObject(np.zeros((10, 30, 3), np.uint8), np.ones((10, 30), np.float32))
    w, h = _object_size_for_template(wide, 127, 0.5)
    assert w / h == pytest.approx(3.0)
    p = (w + h) / 2
    assert math.sqrt((w + p) * (h + p)) == pytest.approx(127.0)


# ---- labels -----------------------------------------------------------------------------


def test_target_exactly_on_an_anchor_makes_it_positive() -> None:
    # Target box = the 64x64 anchor of the centre cell (cx = cy = 0 relative to the crop centre).
    labels, delta = anchor_targets(np.random.default_rng(0), np.array([0.0, 0.0, 64.0, 64.0]))
    assert labels.shape == (5, S, S) and delta.shape == (4, 5, S, S)
    assert labels[SQUARE, C, C] == 1
    np.testing.assert_allclose(delta[:, SQUARE, C, C], 0.0, atol=1e-7)
    # One cell (8 px) away: IoU = 56*64 / (2*64*64 - 56*64) = 0.778 > 0.6: positive.
    assert labels[SQUARE, C, C + 1] == 1 and labels[SQUARE, C + 1, C] == 1
    # Three cells away: IoU = 40*64 / (8192 - 2560) = 0.455, between the thresholds: ignored.
    assert labels[SQUARE, C, C + 3] == -1
    # The 104x32 anchor on the target: IoU = 64*32 / (104*32 + 4096 - 2048) = 0.381: ignored.
    assert labels[0, C, C] == -1
    # Far anchors are never positive; those that were sampled are negative.
    far = np.zeros((S, S), bool)
    far[:, :6] = far[:, -6:] = far[:6, :] = far[-6:, :] = True
    assert not np.any(labels[:, far] == 1)
    assert set(np.unique(labels[:, far])) <= {-1, 0}
    # Sampling limits: at most 16 positives, 64 labelled anchors.
    assert (labels == 1).sum() <= 16 and (labels >= 0).sum() <= 64
    assert (labels == 0).sum() == 64 - (labels == 1).sum()


def test_deltas_follow_the_tracker_decoding() -> None:
    # Target centred 8 px right of the crop centre, twice the square anchor's width.
    labels, delta = anchor_targets(np.random.default_rng(0), np.array([8.0, 0.0, 128.0, 64.0]))
    np.testing.assert_allclose(delta[:, SQUARE, C, C], [8 / 64, 0.0, math.log(2.0), 0.0], rtol=1e-6, atol=1e-7)
    # At the anchor one cell to the right (centre x = 8): dx = 0.
    assert abs(delta[0, SQUARE, C, C + 1]) < 1e-7


def test_negative_pair_labels_only_the_centre_negative() -> None:
    labels, _ = anchor_targets(np.random.default_rng(0), None, LabelConfig(negative_pair_radius=3))
    assert not np.any(labels == 1)
    rows, cols = np.nonzero((labels == 0).any(axis=0))
    assert rows.min() >= C - 3 and rows.max() <= C + 3 and cols.min() >= C - 3 and cols.max() <= C + 3
    assert (labels == 0).sum() == 48  # 64 - 16 positives' share


def test_mask_window_is_where_the_tracker_pastes_the_mask() -> None:
    # Cell (12, 12)'s 127x127 window starts at search pixel ((12 - 4) * 8, (12 - 4) * 8) = (64, 64).
    mask = np.zeros((255, 255), np.uint8)
    mask[127, 130] = 1
    window = mask_window(mask, 12, 12)
    assert window.shape == (127, 127)
    assert np.argwhere(window).tolist() == [[127 - 64, 130 - 64]]
    # Cell (0, 0) starts at (-32, -32): search pixel (0, 0) lands at (32, 32).
    mask[:] = 0
    mask[0, 0] = 1
    assert np.argwhere(mask_window(mask, 0, 0)).tolist() == [[32, 32]]


def test_targets_of_a_pair_refine_at_the_cell_nearest_the_centre() -> None:
    mask = np.zeros((255, 255), np.uint8)
    mask[90:150, 130:190] = 1  # 60x60, centre (159.5, 119.5): 32.5 px right, 7.5 px up of 127
    targets = make_targets(np.random.default_rng(0), (130, 90, 189, 149), mask, True)
    assert targets.refine_cell == (C - 1, C + 4)  # rows: round(-7.5 / 8) = -1; cols: round(32.5 / 8) = 4
    assert targets.refine_label.shape == (127, 127)
    assert targets.mask_labels.shape[1:] == (63, 63)
    assert len(targets.mask_cells) == len(targets.mask_labels) > 0
    positive_cells = {tuple(c) for c in np.argwhere((targets.cls == 1).any(axis=0))}
    assert {tuple(c) for c in targets.mask_cells} <= positive_cells


# ---- training ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trainer(tmp_path_factory: pytest.TempPathFactory) -> Trainer:
    torch.manual_seed(0)
    config = TrainConfig(
        out_dir=str(tmp_path_factory.mktemp("run")), steps=2, batch=2, device="cpu", imagenet=False, warmup_steps=1
    )
    return Trainer(config, pool=_pool())


def test_one_training_step_gives_finite_losses_and_moves_only_trainable_weights(trainer: Trainer) -> None:
    backbone_before = {k: v.clone() for k, v in trainer.model.backbone.state_dict().items()}
    head_before = trainer.model.rpn_head["cls"].head[-1].weight.clone()
    record = trainer.train_step()
    for name in ("total", "cls", "loc", "mask", "refine"):
        assert math.isfinite(record[name]), name
    assert record["total"] > 0
    after = trainer.model.backbone.state_dict()
    assert all(torch.equal(backbone_before[k], after[k]) for k in after)  # frozen, BN statistics included
    assert not torch.equal(head_before, trainer.model.rpn_head["cls"].head[-1].weight)


def test_partially_frozen_backbone_trains_its_last_blocks_with_frozen_statistics(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = TrainConfig(
        out_dir=str(tmp_path), steps=1, batch=2, device="cpu", imagenet=False, warmup_steps=1, train_backbone_from=12
    )
    trainer = Trainer(config, pool=_pool())
    before = {k: v.clone() for k, v in trainer.model.backbone.state_dict().items()}
    trainer.train_step()
    after = trainer.model.backbone.state_dict()
    changed = {k for k in after if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("features.12.", "features.13.")) for k in changed)
    assert not any("running" in k or "num_batches" in k for k in changed)
    with pytest.raises(ValueError, match="freeze_backbone"):
        TrainConfig(out_dir=str(tmp_path), freeze_backbone=False, train_backbone_from=12)


def test_training_state_resumes_exactly(trainer: Trainer, tmp_path: Path) -> None:
    path = trainer.save(tmp_path / "state.pth")
    other = Trainer(trainer.config, pool=trainer.pool)
    other.resume(path)
    assert other.step == trainer.step
    mine, theirs = other.model.state_dict(), trainer.model.state_dict()
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs)
    z1, x1, t1 = trainer.batch_for(other.step)
    z2, x2, t2 = other.batch_for(other.step)
    assert torch.equal(x1, x2) and torch.equal(t1.cls, t2.cls)


def test_exported_weights_are_half_precision_and_load_into_the_arch(trainer: Trainer, tmp_path: Path) -> None:
    path = export_weights(trainer.model, tmp_path / "w.pth", "siammask_mnv2", {"steps": trainer.step})
    checkpoint = load_checkpoint(path)
    assert checkpoint.arch == "siammask_mnv2" and checkpoint.metadata == {"steps": trainer.step}
    assert {v.dtype for v in checkpoint.state_dict.values() if v.is_floating_point()} == {torch.float16}
    model = build_siammask("siammask_mnv2", weights=path)
    reference = trainer.model.state_dict()
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, reference[key].half().float())


@pytest.mark.parametrize("seed", range(8))
def test_touching_neighbours_and_hard_negatives_keep_masks_consistent(seed: int) -> None:
    from siammask_ros.train.synth import SynthConfig

    config = SynthConfig(p_neighbour=1.0, p_hard_negative=1.0, p_negative=0.5, p_occluder=0.0, p_border=0.0)
    sample = synthesise_pair(np.random.default_rng(seed), _pool(), config)
    assert not np.any(sample.mask & ~sample.full_mask)
    if sample.positive:
        # Nothing covers the target here, so the neighbour behind it leaves the whole object visible.
        assert np.array_equal(sample.mask, sample.full_mask) and sample.mask.any()
    else:
        assert not sample.mask.any()


def test_neighbour_offsets_make_the_two_objects_touch() -> None:
    from siammask_ros.train.synth import _touching_offset

    rng = np.random.default_rng(0)
    for _ in range(200):
        dx, dy = _touching_offset(rng)
        # Boxes of equal size overlap when the centres are less than one size apart on both axes.
        assert abs(dx) < 1.0 and abs(dy) < 1.0 and 0.5 < math.hypot(dx, dy) < 0.9


def test_synth_options_on_the_command_line_are_checked() -> None:
    from siammask_ros.train.__main__ import _synth_config
    from siammask_ros.train.synth import SynthConfig

    assert _synth_config(SynthConfig, ["p_neighbour=0.3"]).p_neighbour == 0.3
    with pytest.raises(SystemExit, match="no such field"):
        _synth_config(SynthConfig, ["p_nope=1"])
    with pytest.raises(SystemExit, match="must be a probability"):
        _synth_config(SynthConfig, ["p_neighbour=2"])
    with pytest.raises(SystemExit, match="not a number"):
        _synth_config(SynthConfig, ["p_neighbour=x"])
