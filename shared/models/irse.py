"""IR / IR-SE ResNet backbones (ArcFace's improved residual units with squeeze-and-excitation),
as used by the pSp and e4e encoders. Module names follow the official checkpoints
(``input_layer.*``, ``body.N.shortcut_layer.*``, ``body.N.res_layer.*``).
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn
from torch.nn import functional as F

# Residual units per stage for each supported depth.
STAGE_UNITS: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
    152: (3, 8, 36, 3),
}
STAGE_DEPTHS = (64, 128, 256, 512)
SE_REDUCTION = 16


class UnitSpec(NamedTuple):
    """One residual unit: input channels, output channels, stride of its second conv."""

    in_channel: int
    depth: int
    stride: int


def scaled(channels: int, channel_scale: float) -> int:
    return max(1, round(channels * channel_scale))


def get_blocks(num_layers: int, channel_scale: float = 1.0) -> list[list[UnitSpec]]:
    """Unit specs per stage; every stage starts with a stride-2 unit."""
    if num_layers not in STAGE_UNITS:
        raise ValueError(f"num_layers: expected one of {sorted(STAGE_UNITS)}, got {num_layers}")
    depths = [scaled(d, channel_scale) for d in STAGE_DEPTHS]
    stages = []
    in_channel = depths[0]
    for depth, num_units in zip(depths, STAGE_UNITS[num_layers], strict=True):
        stages.append(
            [UnitSpec(in_channel, depth, 2)] + [UnitSpec(depth, depth, 1)] * (num_units - 1)
        )
        in_channel = depth
    return stages


class SEModule(nn.Module):
    """Squeeze-and-excitation: channel gates from globally pooled features."""

    def __init__(self, channels: int, reduction: int = SE_REDUCTION) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, bias=False)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate = self.fc2(self.fc1(F.adaptive_avg_pool2d(x, 1)).relu()).sigmoid()
        return x * gate


class BottleneckIR(nn.Module):
    """Improved residual unit: BN-Conv-PReLU-Conv(stride)-BN, plus a (projected) shortcut."""

    def __init__(self, in_channel: int, depth: int, stride: int, squeeze_excite: bool = False):
        super().__init__()
        if in_channel == depth:
            # A 1x1 max-pool is plain subsampling; it has no weights, as in the official model.
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channel, depth, 1, stride, bias=False), nn.BatchNorm2d(depth)
            )
        layers: list[nn.Module] = [
            nn.BatchNorm2d(in_channel),
            nn.Conv2d(in_channel, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        ]
        if squeeze_excite:
            layers.append(SEModule(depth))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class BottleneckIRSE(BottleneckIR):
    """Improved residual unit with squeeze-and-excitation (``bottleneck_IR_SE``)."""

    def __init__(self, in_channel: int, depth: int, stride: int) -> None:
        super().__init__(in_channel, depth, stride, squeeze_excite=True)


UNIT_MODULES: dict[str, type[BottleneckIR]] = {"ir": BottleneckIR, "ir_se": BottleneckIRSE}


def build_input_layer(input_nc: int, channels: int) -> nn.Sequential:
    """3x3 stride-1 stem: Conv-BN-PReLU."""
    return nn.Sequential(
        nn.Conv2d(input_nc, channels, 3, 1, 1, bias=False),
        nn.BatchNorm2d(channels),
        nn.PReLU(channels),
    )


def build_body(
    num_layers: int, mode: str, channel_scale: float = 1.0
) -> tuple[nn.Sequential, list[int], list[int]]:
    """The residual units as one Sequential, the index of each stage's last unit, and each
    stage's output channels.
    """
    if mode not in UNIT_MODULES:
        raise ValueError(f"mode: expected one of {sorted(UNIT_MODULES)}, got {mode!r}")
    unit = UNIT_MODULES[mode]
    units: list[nn.Module] = []
    stage_ends: list[int] = []
    stage_channels: list[int] = []
    for stage in get_blocks(num_layers, channel_scale):
        units.extend(unit(spec.in_channel, spec.depth, spec.stride) for spec in stage)
        stage_ends.append(len(units) - 1)
        stage_channels.append(stage[-1].depth)
    return nn.Sequential(*units), stage_ends, stage_channels
