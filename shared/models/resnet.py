"""ResNet encoder blocks with torchvision's module names, built without torchvision.

The blocks and layer builders reproduce ``torchvision.models.resnet`` (v1.5: the stride sits
in the 3×3 conv of a bottleneck) so that state-dict keys match checkpoints trained on it:
``conv1``, ``bn1``, ``relu``, ``maxpool``, ``layer1..4``, and inside a block ``conv1..3``,
``bn1..3``, ``downsample.0`` (1×1 conv) / ``downsample.1`` (BatchNorm).

Only the convolutional part is built (no ``avgpool``/``fc``): the users of this module
(MAResU-Net, SDEA's Diff-CAM) take the stem and the four stages apart themselves.
``width`` scales every channel count (64 is torchvision's); small widths give toy models
with the same key names. No pretrained weights are ever downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convs with an identity (or 1×1 projection) shortcut; ResNet-18/34."""

    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (strided), 1×1 expand ×4, with shortcut; ResNet-50/101/152."""

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


Block = type[BasicBlock] | type[Bottleneck]


def make_layer(
    block: Block, inplanes: int, planes: int, blocks: int, stride: int = 1
) -> nn.Sequential:
    """One ResNet stage: ``blocks`` blocks, the first one strided and projecting if needed."""
    if blocks < 1:
        raise ValueError(f"blocks must be >= 1, got {blocks}")
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(
            conv1x1(inplanes, planes * block.expansion, stride),
            nn.BatchNorm2d(planes * block.expansion),
        )
    layers: list[nn.Module] = [block(inplanes, planes, stride, downsample)]
    for _ in range(1, blocks):
        layers.append(block(planes * block.expansion, planes))
    return nn.Sequential(*layers)


class ResNetEncoder(nn.Module):
    """Stem (``conv1``, ``bn1``, ``relu``, ``maxpool``) and stages ``layer1..4``.

    ``forward`` returns the four stage outputs (strides 4, 8, 16, 32).
    """

    def __init__(
        self,
        block: Block,
        layers: Sequence[int],
        in_channels: int = 3,
        width: int = 64,
    ) -> None:
        super().__init__()
        if len(layers) != 4:
            raise ValueError(f"layers must list 4 stage depths, got {tuple(layers)}")
        if width < 1 or in_channels < 1:
            raise ValueError(f"width and in_channels must be >= 1, got {width}, {in_channels}")
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        planes = [width, width * 2, width * 4, width * 8]
        inplanes = width
        stages = []
        for i, (p, n) in enumerate(zip(planes, layers, strict=True)):
            stages.append(make_layer(block, inplanes, p, n, stride=1 if i == 0 else 2))
            inplanes = p * block.expansion
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels = tuple(p * block.expansion for p in planes)
        _init_weights(self)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        feats = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            feats.append(x)
        return feats


def _init_weights(module: nn.Module) -> None:
    # torchvision's initialisation (kaiming fan-out for convs, unit BatchNorm).
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def resnet34(in_channels: int = 3, width: int = 64) -> ResNetEncoder:
    """ResNet-34 encoder (BasicBlock, 3-4-6-3); 21,284,672 parameters at width 64."""
    return ResNetEncoder(BasicBlock, (3, 4, 6, 3), in_channels=in_channels, width=width)


def resnet101(
    in_channels: int = 3, width: int = 64, layers: Sequence[int] = (3, 4, 23, 3)
) -> ResNetEncoder:
    """ResNet-101 encoder (Bottleneck, 3-4-23-3 unless ``layers`` says otherwise)."""
    return ResNetEncoder(Bottleneck, layers, in_channels=in_channels, width=width)


__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ResNetEncoder",
    "make_layer",
    "resnet34",
    "resnet101",
]
