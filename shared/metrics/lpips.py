"""LPIPS v0.1 with the AlexNet trunk (Zhang et al. 2018, richzhang/PerceptualSimilarity).

The distance between two images in [-1, 1]: both are shifted and scaled per channel (the
paper code's ``ScalingLayer``), passed through AlexNet's convolutional features, and at the
five ReLU outputs the features are unit-normalised along channels, their squared difference
is weighted per channel by a learnt 1×1 convolution (``lin0..lin4``), averaged over space and
summed over the five layers.

Two published files hold the weights, each loaded strictly into its own sub-module:

* ``alexnet-owt-7be5be79.pth`` — torchvision's ImageNet AlexNet; only ``features.*`` is used
  (keys ``features.0/3/6/8/10.weight|bias``), ``classifier.*`` is ignored;
* ``alex.pth`` (v0.1) — the linear heads, keys ``lin0..lin4.model.1.weight`` of shape
  (1, C, 1, 1) (``model.0`` is a Dropout in the paper code, so the conv is ``model.1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from shared.metrics.weights import WeightFile, find_weights, read_state_dict

ALEXNET_WEIGHTS = WeightFile(
    name="alexnet-owt-7be5be79.pth",
    description="torchvision AlexNet ImageNet weights, the LPIPS trunk",
    published_at="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
)
LPIPS_HEAD_WEIGHTS = WeightFile(
    name="alex.pth",
    description="LPIPS v0.1 linear heads for AlexNet",
    published_at=(
        "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth"
        " (file lpips/weights/v0.1/alex.pth of richzhang/PerceptualSimilarity)"
    ),
)

# ScalingLayer of the LPIPS paper code: x ↦ (x − shift) / scale, per RGB channel.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)

FEATURE_CHANNELS = (64, 192, 384, 256, 256)
# Indices into ``features`` right after each of the five ReLUs (exclusive slice ends).
RELU_ENDS = (2, 5, 8, 10, 12)


class AlexNetTrunk(nn.Module):
    """torchvision AlexNet's ``features`` without the last max-pool; returns the 5 ReLU maps."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        activations = []
        start = 0
        for end in RELU_ENDS:
            for layer in self.features[start:end]:
                x = layer(x)
            activations.append(x)
            start = end
        return activations


class LinearHead(nn.Module):
    """A 1×1 conv to one channel without bias, as ``model.1`` (``model.0`` = Dropout)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.Dropout(), nn.Conv2d(channels, 1, kernel_size=1, stride=1, padding=0, bias=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class LPIPSHeads(nn.Module):
    """The five per-layer heads ``lin0..lin4``; the state dict of ``alex.pth`` loads here."""

    def __init__(self) -> None:
        super().__init__()
        for index, channels in enumerate(FEATURE_CHANNELS):
            self.add_module(f"lin{index}", LinearHead(channels))

    def forward(self, squared_differences: Sequence[Tensor]) -> Tensor:
        distance = 0
        for index, difference in enumerate(squared_differences):
            head = getattr(self, f"lin{index}")
            distance = distance + head(difference).mean(dim=(2, 3))
        return distance.flatten()


def unit_normalize(features: Tensor, eps: float = 1e-10) -> Tensor:
    """Divide by the L2 norm over channels (plus ``eps``, as the paper code does)."""
    norm = features.square().sum(dim=1, keepdim=True).sqrt()
    return features / (norm + eps)


class LPIPS(nn.Module):
    """LPIPS v0.1 (AlexNet, learnt heads); ``forward(x, y)`` takes images in [-1, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.net = AlexNetTrunk()
        self.heads = LPIPSHeads()
        self.eval()

    def scale_input(self, x: Tensor) -> Tensor:
        shift = torch.tensor(SHIFT, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        scale = torch.tensor(SCALE, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x - shift) / scale

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Distance per image pair, shape (B,); inputs (B, 3, H, W) in [-1, 1]."""
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(
                f"x and y: expected two (B, 3, H, W) tensors of one shape, got "
                f"{tuple(x.shape)} and {tuple(y.shape)}"
            )
        features_x = self.net(self.scale_input(x))
        features_y = self.net(self.scale_input(y))
        differences = [
            (unit_normalize(fx) - unit_normalize(fy)).square()
            for fx, fy in zip(features_x, features_y, strict=True)
        ]
        return self.heads(differences)

    def load_trunk(self, state: dict[str, Tensor]) -> None:
        """Load torchvision AlexNet weights strictly into the trunk, ignoring ``classifier.*``."""
        features = {k: v for k, v in state.items() if not k.startswith("classifier.")}
        self.net.load_state_dict(features, strict=True)

    def load_heads(self, state: dict[str, Tensor]) -> None:
        self.heads.load_state_dict(state, strict=True)


def load_lpips(search_dirs: Sequence[Path], device: torch.device | str = "cpu") -> LPIPS:
    """LPIPS with the published weights; raises MetricUnavailable naming a missing file."""
    trunk_path, heads_path = find_weights([ALEXNET_WEIGHTS, LPIPS_HEAD_WEIGHTS], search_dirs)
    model = LPIPS()
    model.load_trunk(read_state_dict(trunk_path))
    model.load_heads(read_state_dict(heads_path))
    return model.requires_grad_(False).to(device)
