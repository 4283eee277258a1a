"""SiamMask's neck, depthwise-correlation heads and mask refinement module."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .resnet import init_weights

__all__ = [
    "AdjustLayer",
    "DepthwiseCorrelation",
    "Refine",
    "RefineInputs",
    "depthwise_xcorr",
]

NormLayer = Callable[[int], nn.Module]


def depthwise_xcorr(search: Tensor, kernel: Tensor) -> Tensor:
    """Correlate each channel of ``search`` with the same channel of ``kernel``.

    Both are (B, C, H, W) with the same B and C; the result is
    (B, C, Hs - Hk + 1, Ws - Wk + 1). Runs as one grouped convolution with B*C groups,
    so every batch element uses its own kernel.
    """
    if search.dim() != 4 or kernel.dim() != 4 or search.shape[:2] != kernel.shape[:2]:
        raise ValueError(
            f"depthwise_xcorr needs (B, C, H, W) maps with equal B and C, "
            f"got search {tuple(search.shape)} and kernel {tuple(kernel.shape)}"
        )
    batch, channels = kernel.shape[:2]
    groups = batch * channels
    out = F.conv2d(
        search.reshape(1, groups, *search.shape[2:]),
        kernel.reshape(groups, 1, *kernel.shape[2:]),
        groups=groups,
    )
    return out.reshape(batch, channels, *out.shape[2:])


class AdjustLayer(nn.Module):
    """The neck: 1x1 conv + norm, then the centre ``crop_size`` square of small maps.

    Maps narrower than ``crop_below`` are template features (15x15 for a 127 crop); the
    published network uses only their centre 7x7 (dropping 4 on each side).
    """

    def __init__(
        self,
        in_channels: int = 1024,
        out_channels: int = 256,
        crop_size: int = 7,
        crop_below: int = 20,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        self.downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
            norm_layer(out_channels),
        )
        self.crop_size = crop_size
        self.crop_below = crop_below
        init_weights(self)

    def project(self, x: Tensor) -> Tensor:
        """The 1x1 conv + norm alone, never cropped (a window of a search feature)."""
        return self.downsample(x)

    def forward(self, x: Tensor) -> Tensor:
        x = self.project(x)
        width = x.shape[-1]
        if width >= self.crop_below:
            return x
        if width < self.crop_size:
            raise ValueError(f"feature map width {width} is smaller than the neck's crop size {self.crop_size}")
        start = (width - self.crop_size) // 2
        end = start + self.crop_size
        return x[:, :, start:end, start:end]


def _conv_norm_relu(in_channels: int, out_channels: int, kernel_size: int, norm_layer: NormLayer) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, bias=False),
        norm_layer(out_channels),
        nn.ReLU(inplace=True),
    )


class DepthwiseCorrelation(nn.Module):
    """One SiamMask head: embed both branches, correlate depthwise, then a 1x1 head.

    With 256 channels, a 7x7 template and a 31x31 search, the correlation is 25x25.

    Args:
        out_channels: 10 (cls: 2 x 5 anchors), 20 (loc: 4 x 5) or 3969 (63x63 mask).
    """

    def __init__(
        self,
        out_channels: int,
        in_channels: int = 256,
        hidden: int = 256,
        kernel_size: int = 3,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        self.conv_kernel = _conv_norm_relu(in_channels, hidden, kernel_size, norm_layer)
        self.conv_search = _conv_norm_relu(in_channels, hidden, kernel_size, norm_layer)
        self.head = nn.Sequential(
            nn.Conv2d(hidden, hidden, kernel_size=1, bias=False),
            norm_layer(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, out_channels, kernel_size=1),
        )
        init_weights(self)

    def correlate(self, kernel: Tensor, search: Tensor) -> Tensor:
        """The ``hidden``-channel correlation feature, before the head."""
        return depthwise_xcorr(self.conv_search(search), self.conv_kernel(kernel))

    def forward(self, kernel: Tensor, search: Tensor) -> Tensor:
        return self.head(self.correlate(kernel, search))


class RefineInputs(NamedTuple):
    """What the refinement module sees of one score-map position."""

    p0: Tensor  # (B, C0, 61, 61) conv1 window
    p1: Tensor  # (B, C1, 31, 31) layer1 window
    p2: Tensor  # (B, C2, 15, 15) layer2 window
    p3: Tensor  # (B, Cc, 1, 1) correlation feature at the position


def _relu_convs(*channels: int) -> nn.Sequential:
    """3x3 padded conv + ReLU for each consecutive pair in ``channels``."""
    layers: list[nn.Module] = []
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        layers += [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def _padded_window(feature: Tensor, top: int, left: int, side: int, pad: int) -> Tensor:
    """``F.pad(feature, (pad,) * 4)[..., top + pad : +side, left + pad : +side]`` without
    padding the whole map: slice the part inside it, then zero-pad only what the window
    needs (same values; the refine step no longer copies every skip feature per frame)."""
    height, width = feature.shape[-2:]
    # Clamp to the padded extent, as slicing the padded map would.
    y0, x0 = max(top, -pad), max(left, -pad)
    y1, x1 = min(top + side, height + pad), min(left + side, width + pad)
    inner = feature[:, :, max(y0, 0) : max(min(y1, height), 0), max(x0, 0) : max(min(x1, width), 0)]
    pads = (max(-x0, 0), max(x1 - max(width, x0), 0), max(-y0, 0), max(y1 - max(height, y0), 0))
    return F.pad(inner, pads) if any(pads) else inner


def _gathered_windows(feature: Tensor, tops: Tensor, lefts: Tensor, side: int) -> Tensor:
    """(B, C, side, side): row b's window with corner (``tops[b]``, ``lefts[b]``), zero
    where it leaves the map (values as ``_padded_window``'s)."""
    height, width = feature.shape[-2:]
    offsets = torch.arange(side, device=feature.device)
    ys, xs = tops[:, None] + offsets, lefts[:, None] + offsets  # (B, side)
    inside = ((ys >= 0) & (ys < height))[:, :, None] & ((xs >= 0) & (xs < width))[:, None, :]
    batch = torch.arange(feature.shape[0], device=feature.device)[:, None, None]
    # Index dims (B, side, side) come first, the sliced channel dim last.
    values = feature[batch, :, ys.clamp(0, height - 1)[:, :, None], xs.clamp(0, width - 1)[:, None, :]]
    windows = torch.where(inside[..., None], values, torch.zeros((), dtype=values.dtype, device=values.device))
    return windows.permute(0, 3, 1, 2).contiguous()


class Refine(nn.Module):
    """SiamMask "sharp" refinement: a 127x127 mask from one score-map position.

    The correlation vector at the position is deconvolved to 15x15 and merged, coarse to
    fine, with windows of layer2, layer1 and conv1 features around that position (U-Net
    style, nearest upsampling 15 -> 31 -> 61 -> 127).

    Args:
        skip_channels: channels of the conv1, layer1 and layer2 features.
        corr_channels: channels of the mask head's correlation feature.
        hidden_channels: inner widths of the v0, v1 and v2 branches.
    """

    #: (zero padding, stride in feature pixels per score-map cell, window side) for p0..p2.
    windows: tuple[tuple[int, int, int], ...] = ((16, 4, 61), (8, 2, 31), (4, 1, 15))
    sizes: tuple[int, int, int] = (31, 61, 127)

    def __init__(
        self,
        skip_channels: Sequence[int] = (64, 256, 512),
        corr_channels: int = 256,
        hidden_channels: Sequence[int] = (16, 64, 128),
    ) -> None:
        super().__init__()
        if len(skip_channels) != 3 or len(hidden_channels) != 3:
            raise ValueError(
                f"skip_channels and hidden_channels need 3 entries each, got {tuple(skip_channels)} "
                f"and {tuple(hidden_channels)}"
            )
        c0, c1, c2 = skip_channels
        h0, h1, h2 = hidden_channels
        self.v0 = _relu_convs(c0, h0, 4)
        self.v1 = _relu_convs(c1, h1, 16)
        self.v2 = _relu_convs(c2, h2, 32)
        self.h2 = _relu_convs(32, 32, 32)
        self.h1 = _relu_convs(16, 16, 16)
        self.h0 = _relu_convs(4, 4, 4)
        self.deconv = nn.ConvTranspose2d(corr_channels, 32, kernel_size=15, stride=15)
        self.post0 = nn.Conv2d(32, 16, kernel_size=3, padding=1)
        self.post1 = nn.Conv2d(16, 4, kernel_size=3, padding=1)
        self.post2 = nn.Conv2d(4, 1, kernel_size=3, padding=1)
        init_weights(self)

    def crop(self, skips: Sequence[Tensor], corr: Tensor, row: int, col: int) -> RefineInputs:
        """Cut the windows for score-map position (``row``, ``col``) out of the search features."""
        rows, cols = corr.shape[-2:]
        if not (0 <= row < rows and 0 <= col < cols):
            raise ValueError(f"position (row={row}, col={col}) is outside the {rows}x{cols} score map")
        crops = []
        for feature, (pad, stride, side) in zip(skips, self.windows):
            window = _padded_window(feature, stride * row - pad, stride * col - pad, side, pad)
            if window.shape[-2:] != (side, side):
                raise ValueError(
                    f"a {tuple(feature.shape[-2:])} feature map is too small for a {rows}x{cols} "
                    f"score map: window at (row={row}, col={col}) is {tuple(window.shape[-2:])}, not {side}x{side}"
                )
            crops.append(window)
        p3 = corr[:, :, row : row + 1, col : col + 1]
        return RefineInputs(crops[0], crops[1], crops[2], p3)

    def crop_at(self, skips: Sequence[Tensor], corr: Tensor, rows: Tensor, cols: Tensor) -> RefineInputs:
        """``crop`` for every row of a batch, row i at (``rows[i]``, ``cols[i]``): positions
        as index tensors on the features' device, so they need not reach the host first.
        The windows are gathered, with zeros outside the map, as ``crop`` pads them."""
        batch = torch.arange(corr.shape[0], device=corr.device)
        crops = [
            _gathered_windows(feature, stride * rows - pad, stride * cols - pad, side)
            for feature, (pad, stride, side) in zip(skips, self.windows)
        ]
        p3 = corr[batch, :, rows, cols][:, :, None, None]  # advanced indices first: (B, C)
        return RefineInputs(crops[0], crops[1], crops[2], p3.contiguous())

    def fuse(self, inputs: RefineInputs) -> Tensor:
        """(B, 127, 127) mask logits from the cropped inputs."""
        size0, size1, size2 = self.sizes
        out = self.deconv(inputs.p3)
        out = self.post0(F.interpolate(self.h2(out) + self.v2(inputs.p2), size=(size0, size0), mode="nearest"))
        out = self.post1(F.interpolate(self.h1(out) + self.v1(inputs.p1), size=(size1, size1), mode="nearest"))
        out = self.post2(F.interpolate(self.h0(out) + self.v0(inputs.p0), size=(size2, size2), mode="nearest"))
        return out.squeeze(1)

    def forward(self, skips: Sequence[Tensor], corr: Tensor, row: int, col: int) -> Tensor:
        return self.fuse(self.crop(skips, corr, row, col))
