"""The choice and the mask refinement on the network's device (``tracker.device_choice``).

Run on the CPU device, which takes the code path of CUDA: the gathered refine windows must
equal the sliced ones to the bit, the device's choice must be the host's up to float32
rounding of the exponentials, and a step with device crops must reach the host through
one packed buffer only.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import siammask_ros.tracker.tracker as tracker_module
from siammask_ros.eval.guard import compare_results, demo_clip
from siammask_ros.model import build_siammask, default_weights_path
from siammask_ros.model.backends import TorchBackend, _row
from siammask_ros.tracker import LongTermConfig, MultiTargetTracker, SiamMaskTracker
from siammask_ros.tracker.device_choice import TargetTerms, choose_on_device, unpack_choice


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return build_siammask(weights=default_weights_path())


def _search_and_choice(model: torch.nn.Module, frame_index: int = 1):
    """The host path's search and choice for the demo target on one frame."""
    clip = demo_clip(max_frames=frame_index + 1)
    tracker = SiamMaskTracker(model, clip.config, crops="host")
    tracker.initialize(clip.frames[0], clip.box)
    stepper, seq = tracker._stepper, tracker._seq
    plan = stepper.plan(seq, stepper.crop_source(clip.frames[frame_index]))
    (search,) = stepper.search([plan.patch], seq.template, plan.instance)
    terms = TargetTerms(plan.scale, seq.size[0] * plan.scale, seq.size[1] * plan.scale, plan.window_influence)
    return stepper, search, stepper.choose(search, seq, plan), terms


def test_gathered_refine_windows_equal_the_sliced_ones(model: torch.nn.Module) -> None:
    rng = np.random.default_rng(0)
    patches = [rng.integers(0, 256, (255, 255, 3), dtype=np.uint8) for _ in range(3)]
    backend = TorchBackend(model)
    output = backend.track(patches, backend.template([p[64:191, 64:191] for p in patches]))
    refine = model.refine_head
    positions = [(0, 0), (24, 24), (3, 21)]  # corners (zero padding on two sides) and inside
    rows, cols = (torch.tensor(axis) for axis in zip(*positions))
    gathered = refine.crop_at(output.skips, output.mask_corr, rows, cols)
    for i, (row, col) in enumerate(positions):
        one = tuple(skip[i : i + 1] for skip in output.skips)
        sliced = refine.crop(one, output.mask_corr[i : i + 1], row, col)
        for got, want in zip(gathered, sliced):
            assert torch.equal(got[i : i + 1], want), (row, col)
    probs = backend.refine_at(output, rows, cols)
    expected = np.stack([backend.refine([_row(output, i)], [p])[0] for i, p in enumerate(positions)])
    np.testing.assert_allclose(probs.numpy(), expected, atol=1e-6)


def test_the_device_choice_is_the_hosts(model: torch.nn.Module) -> None:
    stepper, search, choice, terms = _search_and_choice(model)
    config = stepper.config
    device_choice = choose_on_device(search.output, stepper.device_grid(search.score_size), [terms],
                                     config.penalty_k, config.lr)  # fmt: skip
    best, row, col, confidence, lr, pred, _ = unpack_choice(
        np.concatenate([device_choice.values[0].numpy(), np.zeros(127 * 127)])
    )
    assert (best, row, col) == (choice.best, choice.row, choice.col)
    assert (int(device_choice.rows[0]), int(device_choice.cols[0])) == (row, col)
    # torch's and numpy's float32 exponentials differ in the last bit; nothing more.
    assert confidence == pytest.approx(choice.confidence, rel=1e-6)
    assert lr == pytest.approx(choice.lr, rel=1e-6)
    np.testing.assert_allclose(pred, choice.pred, rtol=1e-6)


def test_a_non_finite_candidate_is_never_chosen_on_the_device(model: torch.nn.Module) -> None:
    stepper, search, choice, terms = _search_and_choice(model)
    output = search.output
    cls = output.cls.clone()
    anchors = stepper.config.anchor_num
    # An overflowing foreground logit at the chosen cell: its score is NaN, never chosen.
    cls.view(-1)[anchors * stepper.config.score_size(255) ** 2 + choice.best] = torch.inf
    cls.view(-1)[choice.best] = torch.inf
    poisoned = output._replace(cls=cls)
    grid = stepper.device_grid(search.score_size)
    values = choose_on_device(poisoned, grid, [terms], stepper.config.penalty_k, stepper.config.lr).values[0]
    assert int(values[0]) != choice.best and values[9] == 1.0
    # Nothing finite anywhere: the choice proposes no step.
    nothing = output._replace(loc=torch.full_like(output.loc, torch.nan))
    values = choose_on_device(nothing, grid, [terms], stepper.config.penalty_k, stepper.config.lr).values[0]
    assert values[9] == 0.0
    assert unpack_choice(np.concatenate([values.numpy(), np.zeros(127 * 127)]))[5] is None


def test_a_device_step_reaches_the_host_in_one_buffer(model: torch.nn.Module, monkeypatch) -> None:
    """Targets on the 255 and the lost-mode search in the same step: the host path's
    copies (score maps, then masks per group) are never taken, and the results agree
    with the host path's."""
    clip = demo_clip(max_frames=6)
    x, y, w, h = clip.box
    boxes = {"a": clip.box, "b": (x + 120, y + 20, w, h), "wide": (x + 40, y - 30, w, h)}
    config = clip.config.with_changes(long_term=LongTermConfig(enabled=True, search_size=383))
    runs = {}
    for crops in ("host", "device"):
        if crops == "device":
            def refused(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
                raise AssertionError("a device step took a host path's copy")

            monkeypatch.setattr(tracker_module, "_heads_on_host", refused)
            monkeypatch.setattr(TorchBackend, "refine", refused)
        tracker = MultiTargetTracker(model, config, crops=crops)
        for target_id, box in boxes.items():
            tracker.add_target(clip.frames[0], box, target_id=target_id)
        results = []
        for frame in clip.frames[1:]:
            tracker.mark_lost("wide")  # keeps one target on the 383 search
            results.append(tracker.track(frame))
        runs[crops] = results
    assert {r["wide"].search_size for r in runs["device"]} == {383}
    assert {r["a"].search_size for r in runs["device"]} == {255}
    for target_id in boxes:
        agreement = compare_results(target_id, [r[target_id] for r in runs["host"]],
                                    [r[target_id] for r in runs["device"]])  # fmt: skip
        assert agreement.box_iou > 0.999 and agreement.mask_iou > 0.999, agreement
