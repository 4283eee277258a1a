"""The SiamMask network: feature sizes, heads, refinement windows, statelessness."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import Tensor, nn

from siammask_ros.model import ARCHITECTURES, SearchOutput, SiamMask, build_siammask, resolve_device
from siammask_ros.model.heads import AdjustLayer, DepthwiseCorrelation, Refine, depthwise_xcorr
from siammask_ros.model.resnet import Bottleneck, ResNet



@pytest.fixture(autouse=True)
def _no_grad() -> Iterator[None]:
    with torch.no_grad():
        yield


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def images(side: int, batch: int = 1, seed: int = 0) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, side, side, generator=generator) * 255


@pytest.fixture(scope="module")
def model() -> SiamMask:
    torch.manual_seed(0)
    return build_siammask("siammask_r50")


@pytest.fixture(scope="module")
def template_features(model: SiamMask) -> Tensor:
    with torch.no_grad():
        return model.template(images(127, seed=1))


@pytest.fixture(scope="module")
def search_255(model: SiamMask, template_features: Tensor) -> SearchOutput:
    with torch.no_grad():
        return model.track(images(255, seed=2), template_features)


# --- backbone -------------------------------------------------------------------------


def test_backbone_feature_sizes_follow_the_layer_arithmetic(model: SiamMask) -> None:
    # conv1 7x7/2 unpadded, maxpool 3/2 pad 1, layer2 entry 3x3/2 unpadded, layer3 keeps size.
    c1 = conv_out(255, 7, stride=2)
    l1 = conv_out(c1, 3, stride=2, padding=1)
    l2 = conv_out(l1, 3, stride=2)
    assert (c1, l1, l2) == (125, 63, 31)  # the sizes the reference lists

    p0, p1, p2, p3 = model.backbone(images(255))
    assert p0.shape == (1, 64, 125, 125)
    assert p1.shape == (1, 256, 63, 63)
    assert p2.shape == (1, 512, 31, 31)
    assert p3.shape == (1, 1024, 31, 31)
    assert model.backbone.out_channels == (64, 256, 512, 1024)


def test_template_goes_through_a_15x15_layer3_cropped_to_7x7(model: SiamMask, template_features: Tensor) -> None:
    deep = model.backbone(images(127, seed=1))[-1]
    assert deep.shape == (1, 1024, 15, 15)
    assert template_features.shape == (1, 256, 7, 7)
    expected = model.neck.downsample(deep)[:, :, 4:11, 4:11]
    torch.testing.assert_close(template_features, expected, rtol=0, atol=0)


def test_backbone_layer_geometry_matches_the_reference() -> None:
    net = ResNet(Bottleneck, (1, 2, 2))
    assert (net.conv1.kernel_size, net.conv1.stride, net.conv1.padding) == ((7, 7), (2, 2), (0, 0))
    l2 = net.layer2[0]
    assert (l2.conv2.stride, l2.conv2.padding) == ((2, 2), (0, 0))
    assert (l2.downsample[0].kernel_size, l2.downsample[0].stride, l2.downsample[0].padding) == ((3, 3), (2, 2), (0, 0))
    l3 = net.layer3
    assert (l3[0].conv2.dilation, l3[0].conv2.padding) == ((1, 1), (1, 1))
    assert (l3[0].downsample[0].kernel_size, l3[0].downsample[0].padding) == ((3, 3), (1, 1))
    assert (l3[1].conv2.dilation, l3[1].conv2.padding, l3[1].conv2.stride) == ((2, 2), (2, 2), (1, 1))
    assert net.layer1[0].downsample[0].kernel_size == (1, 1)


def test_bad_stage_table_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        ResNet(Bottleneck, (3, 4))
    with pytest.raises(ValueError, match="stride=2, dilation=2"):
        Bottleneck(64, 64, stride=2, dilation=2)


# --- neck and heads ---------------------------------------------------------------------


def test_neck_crops_only_narrow_maps() -> None:
    torch.manual_seed(3)
    neck = AdjustLayer(in_channels=8, out_channels=4).eval()
    small = torch.randn(1, 8, 15, 15)
    large = torch.randn(1, 8, 31, 31)
    adjusted = neck.downsample(small)
    torch.testing.assert_close(neck(small), adjusted[:, :, 4:-4, 4:-4], rtol=0, atol=0)
    assert neck(large).shape == (1, 4, 31, 31)


def test_depthwise_xcorr_equals_a_per_channel_sliding_sum() -> None:
    generator = torch.Generator().manual_seed(4)
    search = torch.randn(2, 3, 9, 8, generator=generator, dtype=torch.float64)
    kernel = torch.randn(2, 3, 3, 4, generator=generator, dtype=torch.float64)
    expected = torch.zeros(2, 3, 7, 5, dtype=torch.float64)
    for b in range(2):
        for c in range(3):
            for i in range(7):
                for j in range(5):
                    expected[b, c, i, j] = (search[b, c, i : i + 3, j : j + 4] * kernel[b, c]).sum()
    torch.testing.assert_close(depthwise_xcorr(search, kernel), expected)


def test_depthwise_xcorr_rejects_unequal_batches() -> None:
    with pytest.raises(ValueError, match=r"\(2, 3, 9, 9\).*\(1, 3, 3, 3\)"):
        depthwise_xcorr(torch.zeros(2, 3, 9, 9), torch.zeros(1, 3, 3, 3))


def test_head_treats_each_batch_element_with_its_own_template() -> None:
    torch.manual_seed(5)
    head = DepthwiseCorrelation(out_channels=6, in_channels=8, hidden=8).eval()
    kernel, search = torch.randn(2, 8, 7, 7), torch.randn(2, 8, 31, 31)
    batched = head(kernel, search)
    assert batched.shape == (2, 6, 25, 25)
    for b in range(2):
        torch.testing.assert_close(batched[b : b + 1], head(kernel[b : b + 1], search[b : b + 1]))
    torch.testing.assert_close(head.head(head.correlate(kernel, search)), batched, rtol=0, atol=0)


def test_track_output_shapes_at_255(model: SiamMask, search_255: SearchOutput) -> None:
    assert search_255.cls.shape == (1, 10, 25, 25)
    assert search_255.loc.shape == (1, 20, 25, 25)
    assert search_255.mask_corr.shape == (1, 256, 25, 25)
    assert [tuple(s.shape) for s in search_255.skips] == [(1, 64, 125, 125), (1, 256, 63, 63), (1, 512, 31, 31)]
    assert model.mask_logits(search_255).shape == (1, 63 * 63, 25, 25)
    logits = model.refine_mask(search_255, 12, 20)
    assert logits.shape == (1, 127, 127)
    assert torch.isfinite(logits).all()


def test_training_forward_returns_cls_loc_and_unrefined_masks(model: SiamMask, search_255: SearchOutput) -> None:
    cls, loc, mask = model(images(127, seed=1), images(255, seed=2))
    torch.testing.assert_close(cls, search_255.cls)
    torch.testing.assert_close(loc, search_255.loc)
    torch.testing.assert_close(mask, model.mask_logits(search_255))


def test_large_831_search(model: SiamMask, template_features: Tensor) -> None:
    side = conv_out(831, 7, stride=2)
    assert side == 413
    out = model.track(images(831, seed=6), template_features)
    assert out.cls.shape == (1, 10, 97, 97)
    assert out.loc.shape == (1, 20, 97, 97)
    assert [tuple(s.shape[-2:]) for s in out.skips] == [(413, 413), (207, 207), (103, 103)]
    for row, col in ((0, 0), (96, 96), (0, 96), (48, 7)):
        logits = model.refine_mask(out, row, col)
        assert logits.shape == (1, 127, 127)
        assert torch.isfinite(logits).all()


# --- refinement -----------------------------------------------------------------------


def zero_filled_window(feature: Tensor, top: int, left: int, side: int) -> Tensor:
    """feature[..., top:top+side, left:left+side], with zeros where that leaves the map."""
    out = torch.zeros(*feature.shape[:2], side, side, dtype=feature.dtype)
    height, width = feature.shape[-2:]
    for r in range(side):
        for c in range(side):
            y, x = top + r, left + c
            if 0 <= y < height and 0 <= x < width:
                out[:, :, r, c] = feature[:, :, y, x]
    return out


@pytest.mark.parametrize("row, col", [(0, 0), (24, 24), (3, 21), (12, 12)])
def test_refine_windows_are_the_padded_feature_windows(row: int, col: int) -> None:
    generator = torch.Generator().manual_seed(7)
    skips = [torch.randn(1, 2, side, side, generator=generator) for side in (125, 63, 31)]
    corr = torch.randn(1, 5, 25, 25, generator=generator)
    p0, p1, p2, p3 = Refine().crop(skips, corr, row, col)
    # Windows start (pad) feature pixels before stride * position: 16 at stride 4, 8 at 2, 4 at 1.
    torch.testing.assert_close(p0, zero_filled_window(skips[0], 4 * row - 16, 4 * col - 16, 61), rtol=0, atol=0)
    torch.testing.assert_close(p1, zero_filled_window(skips[1], 2 * row - 8, 2 * col - 8, 31), rtol=0, atol=0)
    torch.testing.assert_close(p2, zero_filled_window(skips[2], row - 4, col - 4, 15), rtol=0, atol=0)
    assert p3.shape == (1, 5, 1, 1)
    torch.testing.assert_close(p3.flatten(), corr[0, :, row, col], rtol=0, atol=0)


def test_refine_rejects_positions_outside_the_score_map() -> None:
    skips = [torch.zeros(1, 1, s, s) for s in (125, 63, 31)]
    with pytest.raises(ValueError, match=r"row=25, col=0.*25x25"):
        Refine().crop(skips, torch.zeros(1, 1, 25, 25), 25, 0)
    with pytest.raises(ValueError, match="too small"):
        Refine().crop([torch.zeros(1, 1, s, s) for s in (100, 63, 31)], torch.zeros(1, 1, 25, 25), 24, 24)


def test_refine_with_other_channels_fuses_its_crops_per_batch_element() -> None:
    torch.manual_seed(8)
    refine = Refine(skip_channels=(3, 5, 6), corr_channels=7, hidden_channels=(4, 4, 4)).eval()
    skips = [torch.randn(2, c, s, s) for c, s in ((3, 125), (5, 63), (6, 31))]
    corr = torch.randn(2, 7, 25, 25)
    logits = refine(skips, corr, 5, 17)
    assert logits.shape == (2, 127, 127)
    torch.testing.assert_close(logits, refine.fuse(refine.crop(skips, corr, 5, 17)), rtol=0, atol=0)
    single = refine([s[1:] for s in skips], corr[1:], 5, 17)
    torch.testing.assert_close(logits[1:], single)


def test_refine_upsamples_by_nearest_neighbour() -> None:
    # Zero every weight except centre taps that pass channel 0 of the layer1 window through
    # v1, post1, h0 and post2: the output is then that 31x31 window upsampled to 61, then 127.
    refine = Refine(skip_channels=(1, 1, 1), corr_channels=1, hidden_channels=(1, 1, 1)).eval()
    for parameter in refine.parameters():
        nn.init.zeros_(parameter)
    for conv in (refine.v1[0], refine.v1[2], refine.post1, refine.h0[0], refine.h0[2], refine.post2):
        conv.weight.data[0, 0, 1, 1] = 1.0
    layer1 = torch.arange(1.0, 63 * 63 + 1).reshape(1, 1, 63, 63)
    skips = [torch.zeros(1, 1, 125, 125), layer1, torch.zeros(1, 1, 31, 31)]
    out = refine(skips, torch.zeros(1, 1, 25, 25), 10, 10)[0]

    window = layer1[0, 0, 12:43, 12:43]  # rows 2*10-8 .. +30, all inside the map
    # nearest: destination pixel i reads source floor(i * in / out)
    idx61 = [i * 31 // 61 for i in range(61)]
    idx127 = [idx61[j * 61 // 127] for j in range(127)]
    expected = window[idx127][:, idx127]
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


# --- statelessness, builder, devices --------------------------------------------------


def test_module_keeps_no_per_sequence_state(model: SiamMask, template_features: Tensor) -> None:
    attributes_before = set(vars(model))
    weights_before = {k: v.clone() for k, v in model.state_dict().items()}
    x = images(255, seed=9)
    first = model.track(x, template_features)
    other_template = model.template(images(127, seed=10))
    again = model.track(x, template_features)
    other = model.track(x, other_template)
    torch.testing.assert_close(again.cls, first.cls, rtol=0, atol=0)
    torch.testing.assert_close(model.refine_mask(again, 3, 4), model.refine_mask(first, 3, 4), rtol=0, atol=0)
    assert not torch.equal(other.cls, first.cls)
    assert set(vars(model)) == attributes_before
    assert all(torch.equal(weights_before[k], v) for k, v in model.state_dict().items())


def test_builder_returns_eval_mode_and_rejects_unknown_arch(model: SiamMask) -> None:
    assert not model.training
    assert all(not m.training for m in model.modules())
    with pytest.raises(ValueError, match="'siammask_r18'.*siammask_r50"):
        build_siammask("siammask_r18")


def test_images_must_be_bgr_batches(model: SiamMask) -> None:
    with pytest.raises(ValueError, match=r"\(3, 127, 127\)"):
        model.template(torch.zeros(3, 127, 127))


def tiny_siammask() -> SiamMask:
    """A small network with the same strides, assembled from the same injectable parts."""
    backbone = TinyBackbone()
    return SiamMask(
        backbone=backbone,
        neck=AdjustLayer(16, 8),
        rpn_cls=DepthwiseCorrelation(10, in_channels=8, hidden=8),
        rpn_loc=DepthwiseCorrelation(20, in_channels=8, hidden=8),
        mask_head=DepthwiseCorrelation(63 * 63, in_channels=8, hidden=8),
        refine_head=Refine(skip_channels=(4, 6, 8), corr_channels=8, hidden_channels=(4, 4, 4)),
    )


class TinyBackbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 7, stride=2)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.c1 = nn.Conv2d(4, 6, 3, padding=1)
        self.c2 = nn.Conv2d(6, 8, 3, stride=2)
        self.c3 = nn.Conv2d(8, 16, 3, padding=1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        p0 = self.stem(x / 255)
        p1 = self.c1(self.pool(p0))
        p2 = self.c2(p1)
        return p0, p1, p2, self.c3(p2)


def test_another_architecture_registers_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ARCHITECTURES, "tiny", tiny_siammask)
    tiny = build_siammask("tiny")
    out = tiny.track(images(255), tiny.template(images(127)))
    assert out.cls.shape == (1, 10, 25, 25)
    assert tiny.refine_mask(out, 24, 0).shape == (1, 127, 127)


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    expected_auto = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected_auto
    with pytest.raises(ValueError, match="'gpu0'"):
        resolve_device("gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised when CUDA is absent")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_resolve_device_names_the_unavailable_cuda_device(name: str) -> None:
    with pytest.raises(ValueError, match=f"'{name}'.*CUDA is not available"):
        resolve_device(name)
    with pytest.raises(ValueError, match="CUDA is not available"):
        build_siammask(device=name)
