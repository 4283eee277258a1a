"""SiamMask's ResNet-50 backbone: dilated, output stride 8, truncated after layer3.

It differs from torchvision's ResNet-50 in ways that change every feature size, so the
published checkpoints only fit this exact layout:

- ``conv1`` is unpadded (a 255 search gives 125x125, not 128x128);
- a stride-2 Bottleneck has an unpadded 3x3 ``conv2``, and its downsample is a 3x3 conv;
- layer3 keeps stride 1 and uses dilation 2 instead; its first block is the transition
  (dilation 1) with a padded 3x3 downsample.

``forward`` returns the conv1 features (before the max pool) and the outputs of layer1,
layer2 and layer3: the first three feed the refinement module, the last one the heads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

__all__ = ["Bottleneck", "ResNet", "init_weights", "siammask_resnet50"]

NormLayer = Callable[[int], nn.Module]


def conv1x1(in_planes: int, out_planes: int) -> nn.Conv2d:
    """1x1 convolution without bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, bias=False)


def init_weights(module: nn.Module) -> None:
    """Kaiming-normal (fan_out) convolutions, unit/zero norm layers: torchvision's scheme."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided or dilated), 1x1 expand, plus the shortcut."""

    expansion: int = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        if stride != 1 and dilation != 1:
            raise ValueError(f"a Bottleneck is either strided or dilated, got stride={stride}, dilation={dilation}")
        norm_layer = norm_layer or nn.BatchNorm2d
        # A strided 3x3 is unpadded (SiamMask's "2 - stride"); otherwise padding keeps the size.
        padding = 0 if stride > 1 else dilation
        width = planes
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = nn.Conv2d(
            width, width, kernel_size=3, stride=stride, padding=padding, dilation=dilation, bias=False
        )
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """The three-stage dilated ResNet used by SiamMask (output stride 8).

    Args:
        block: residual block class with an ``expansion`` attribute.
        layers: number of blocks in layer1, layer2 and layer3.
        norm_layer: normalisation layer factory, ``nn.BatchNorm2d`` by default.
    """

    def __init__(
        self,
        block: type[Bottleneck] = Bottleneck,
        layers: Sequence[int] = (3, 4, 6),
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        if len(layers) != 3 or any(n < 1 for n in layers):
            raise ValueError(f"layers must be three positive block counts, got {tuple(layers)}")
        self._norm_layer = norm_layer or nn.BatchNorm2d
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=0, bias=False)
        self.bn1 = self._norm_layer(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], dilation=2)
        #: Channels of the four maps ``forward`` returns: (64, 256, 512, 1024) for ResNet-50.
        self.out_channels = (64, 64 * block.expansion, 128 * block.expansion, 256 * block.expansion)
        init_weights(self)

    def _make_layer(
        self, block: type[Bottleneck], planes: int, blocks: int, stride: int = 1, dilation: int = 1
    ) -> nn.Sequential:
        if stride != 1 and dilation != 1:
            raise ValueError(f"a stage is either strided or dilated, got stride={stride}, dilation={dilation}")
        norm_layer = self._norm_layer
        out_planes = planes * block.expansion
        # The first block of a dilated stage is the transition: half the dilation.
        entry_dilation = max(dilation // 2, 1)
        downsample: nn.Module | None = None
        if stride != 1 or dilation != 1:
            # SiamMask's shortcut here is a 3x3 conv: unpadded when strided, padded when dilated.
            padding = 0 if stride != 1 else entry_dilation
            downsample = nn.Sequential(
                nn.Conv2d(
                    self.inplanes,
                    out_planes,
                    kernel_size=3,
                    stride=stride,
                    padding=padding,
                    dilation=entry_dilation,
                    bias=False,
                ),
                norm_layer(out_planes),
            )
        elif self.inplanes != out_planes:
            downsample = nn.Sequential(conv1x1(self.inplanes, out_planes), norm_layer(out_planes))

        layers = [block(self.inplanes, planes, stride, downsample, entry_dilation, norm_layer)]
        self.inplanes = out_planes
        layers += [block(self.inplanes, planes, dilation=dilation, norm_layer=norm_layer) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        p0 = self.relu(self.bn1(self.conv1(x)))
        p1 = self.layer1(self.maxpool(p0))
        p2 = self.layer2(p1)
        p3 = self.layer3(p2)
        return p0, p1, p2, p3


def siammask_resnet50(norm_layer: NormLayer | None = None) -> ResNet:
    """The ResNet-50 (3, 4, 6 Bottlenecks) backbone of SiamMask (Wang et al., CVPR 2019)."""
    return ResNet(Bottleneck, (3, 4, 6), norm_layer=norm_layer)
