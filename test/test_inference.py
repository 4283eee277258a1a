"""The inference rewrite (batch norm folded, channels-last) computes what the loaded network does."""

from __future__ import annotations

import copy
import json
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from calibrated_network import calibrated_network, texture
from siammask_ros.eval.metrics import mask_iou
from siammask_ros.io.frames import open_frames
from siammask_ros.model import build_siammask, default_weights_path, fold_batchnorm, optimize_for_inference
from siammask_ros.tracker import SiamMaskTracker, TrackerConfig

DEMO_SPEC = Path(__file__).resolve().parents[1] / "data" / "demo" / "demo.json"
DEMO_CLIP = DEMO_SPEC.with_name("vtest_pedestrians.mp4")


def _batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def _crop(side: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(texture(side, side, seed=seed, cell=7)).permute(2, 0, 1).unsqueeze(0).float()


@pytest.mark.parametrize("arch", ["siammask_r50", "siammask_mnv2"])
def test_every_batchnorm_is_folded(arch: str) -> None:
    model = build_siammask(arch)
    assert _batchnorms(model) > 0
    optimize_for_inference(model)
    assert _batchnorms(model) == 0
    assert not any(name.endswith("running_mean") for name in model.state_dict())


def test_sequential_folding_covers_the_heads() -> None:
    model = build_siammask("siammask_r50")
    in_heads = _batchnorms(model.neck) + _batchnorms(model.rpn_head) + _batchnorms(model.mask_head)
    assert fold_batchnorm(model) >= in_heads > 0
    assert _batchnorms(model.neck) + _batchnorms(model.rpn_head) + _batchnorms(model.mask_head) == 0


def test_folding_a_training_network_is_refused() -> None:
    model = build_siammask("siammask_mnv2").train()
    with pytest.raises(RuntimeError, match="eval mode"):
        fold_batchnorm(model)
    assert _batchnorms(model) > 0


def test_a_sequential_with_its_own_forward_is_left_alone() -> None:
    class NormFirst(nn.Sequential):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self[0](self[1](x))  # registration order is not data flow here

    module = NormFirst(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)).eval()
    assert fold_batchnorm(module) == 0
    assert isinstance(module[1], nn.BatchNorm2d)


@pytest.mark.parametrize("arch", ["siammask_r50", "siammask_mnv2"])
def test_optimized_network_computes_the_same_outputs(arch: str) -> None:
    plain = calibrated_network(arch, seed=1)
    fast = optimize_for_inference(copy.deepcopy(plain))
    z, x = _crop(127, seed=11), _crop(255, seed=12)
    with torch.inference_mode():
        ref = plain.track(x, plain.template(z))
        out = fast.track(x, fast.template(z))
        row = col = ref.cls.shape[-1] // 2
        ref_mask = plain.refine_mask(ref, row, col)
        out_mask = fast.refine_mask(out, row, col)
    for name, a, b in (("cls", ref.cls, out.cls), ("loc", ref.loc, out.loc), ("refine", ref_mask, out_mask)):
        scale = a.abs().max().item()
        assert torch.allclose(a, b, rtol=0, atol=5e-4 * scale), f"{name} differs by {(a - b).abs().max():.3g}"


def test_build_siammask_optimize_keeps_loaded_weights(tmp_path: Path) -> None:
    weights = default_weights_path()
    if weights is None:
        pytest.skip("no bundled default weights in this installation")
    plain = build_siammask(weights=weights)
    fast = build_siammask(weights=weights, optimize=True)
    assert _batchnorms(fast) == 0 and not fast.training
    conv = fast.backbone.get_submodule("features.13.conv.0.0")
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    z, x = _crop(127, seed=21), _crop(255, seed=22)
    with torch.inference_mode():
        a = plain.track(x, plain.template(z)).cls
        b = fast.track(x, fast.template(z)).cls
    assert torch.allclose(a, b, atol=1e-4 * a.abs().max().item())


def test_tracker_follows_the_same_path_with_the_optimized_network() -> None:
    weights = default_weights_path()
    if weights is None or not DEMO_CLIP.exists():
        pytest.skip("needs the bundled default weights and demo clip")
    frames = [frame for _, frame in islice(open_frames(DEMO_CLIP), 15)]
    assert len(frames) == 15
    box = json.loads(DEMO_SPEC.read_text())["box"]
    trackers = [
        SiamMaskTracker(build_siammask(weights=weights, optimize=optimize), TrackerConfig()) for optimize in (False, True)
    ]
    for tracker in trackers:
        tracker.initialize(frames[0], box)
    for frame in frames[1:]:
        plain, fast = (tracker.track(frame) for tracker in trackers)
        assert fast.state == plain.state
        assert np.allclose(fast.center + fast.size, plain.center + plain.size, atol=0.05)
        assert fast.confidence == pytest.approx(plain.confidence, abs=1e-4)
        assert plain.mask.any()
        assert mask_iou(fast.mask, plain.mask) > 0.98
