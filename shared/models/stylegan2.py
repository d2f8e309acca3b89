"""StyleGAN2 generator (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN").

State-dict compatible with rosinality/stylegan2-pytorch's ``Generator`` (the ``g_ema`` entry of
its checkpoints and the ``decoder.`` part of pSp/e4e checkpoints), written in plain PyTorch ops:
no compiled extensions, any device, any floating dtype.
"""

from __future__ import annotations

import math
import os
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from shared.models.checkpoints import check_state_dict, read_checkpoint

LEAKY_RELU_SLOPE = 0.2
# Gain that keeps the activation variance of a leaky ReLU close to 1 (StyleGAN's "lrelu" gain).
LEAKY_RELU_GAIN = math.sqrt(2.0)
DEMODULATION_EPS = 1e-8
MIN_SIZE, MAX_SIZE = 4, 1024


# --------------------------------------------------------------------------- primitive ops


def fused_leaky_relu(
    x: Tensor,
    bias: Tensor | None = None,
    negative_slope: float = LEAKY_RELU_SLOPE,
    scale: float = LEAKY_RELU_GAIN,
) -> Tensor:
    """Add a per-channel bias (channel axis 1), leaky ReLU, multiply by ``scale``."""
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x, negative_slope) * scale


def make_fir_kernel(taps: Sequence[float], gain: float = 1.0) -> Tensor:
    """Separable 2-D FIR kernel from 1-D ``taps`` (outer product), normalised to sum ``gain``."""
    k = torch.tensor(list(taps), dtype=torch.float32)
    if k.ndim == 1:
        k = torch.outer(k, k)
    return k / k.sum() * gain


def upfirdn2d(
    x: Tensor, kernel: Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)
) -> Tensor:
    """Upsample by zero insertion, pad (negative pads crop), FIR-filter, keep every ``down``-th.

    ``kernel`` is applied as a true convolution (flipped), as in NVIDIA's upfirdn2d; ``pad`` is
    (before, after), the same on both spatial axes.
    """
    batch, channels, height, width = x.shape
    if up > 1:
        x = x.reshape(batch, channels, height, 1, width, 1)
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(batch, channels, height * up, width * up)
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    weight = kernel.flip(0, 1).to(dtype=x.dtype, device=x.device)[None, None]
    padded_h, padded_w = x.shape[-2:]
    x = F.conv2d(x.reshape(batch * channels, 1, padded_h, padded_w), weight)
    x = x.reshape(batch, channels, x.shape[-2], x.shape[-1])
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


# --------------------------------------------------------------------------- layers


class PixelNorm(nn.Module):
    """Normalise each latent vector to unit root-mean-square."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate (weights scaled at run time, not at init)."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activate: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init))) if bias else None
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: Tensor) -> Tensor:
        bias = self.bias * self.lr_mul if self.bias is not None else None
        if self.activate:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias)


class FusedLeakyReLU(nn.Module):
    """Learned per-channel bias followed by the scaled leaky ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return fused_leaky_relu(x, self.bias)


class Blur(nn.Module):
    """FIR low-pass filter (the anti-aliasing after a stride-2 transposed convolution)."""

    def __init__(self, taps: Sequence[float], pad: tuple[int, int], upsample_factor: int = 1):
        super().__init__()
        self.register_buffer("kernel", make_fir_kernel(taps, gain=upsample_factor**2))
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """2x FIR upsampling of the RGB skip branch."""

    def __init__(self, taps: Sequence[float], factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_fir_kernel(taps, gain=factor**2))
        p = len(taps) - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class ModulatedConv2d(nn.Module):
    """Convolution whose weights are scaled per sample by the style, then (optionally)
    demodulated to unit norm per output channel; one grouped convolution for the whole batch.
    """

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        self.in_channel = in_channel
        self.out_channel = out_channel
        self.kernel_size = kernel_size
        self.upsample = upsample
        self.demodulate = demodulate
        if upsample:
            factor = 2
            p = (len(blur_kernel) - factor) - (kernel_size - 1)
            pad = ((p + 1) // 2 + factor - 1, p // 2 + 1)
            self.blur = Blur(blur_kernel, pad=pad, upsample_factor=factor)
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(
            torch.randn(1, out_channel, in_channel, kernel_size, kernel_size)
        )
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1.0)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        batch, in_channel, height, width = x.shape
        k = self.kernel_size
        style = self.modulation(style).view(batch, 1, in_channel, 1, 1)
        weight = self.scale * self.weight * style  # (B, out, in, k, k)
        if self.demodulate:
            demod = torch.rsqrt(weight.square().sum(dim=(2, 3, 4)) + DEMODULATION_EPS)
            weight = weight * demod.view(batch, self.out_channel, 1, 1, 1)
        x = x.reshape(1, batch * in_channel, height, width)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(batch * in_channel, self.out_channel, k, k)
            out = F.conv_transpose2d(x, weight, stride=2, groups=batch)
            out = out.reshape(batch, self.out_channel, out.shape[-2], out.shape[-1])
            return self.blur(out)
        weight = weight.reshape(batch * self.out_channel, in_channel, k, k)
        out = F.conv2d(x, weight, padding=self.padding, groups=batch)
        return out.reshape(batch, self.out_channel, out.shape[-2], out.shape[-1])


class NoiseInjection(nn.Module):
    """Add single-channel noise with a learned strength."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, noise: Tensor | None = None) -> Tensor:
        if noise is None:
            batch, _, height, width = x.shape
            noise = x.new_empty(batch, 1, height, width).normal_()
        return x + self.weight * noise.to(x.dtype)


class ConstantInput(nn.Module):
    """The learned 4x4 constant the synthesis network starts from."""

    def __init__(self, channels: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> Tensor:
        return self.input.repeat(batch, 1, 1, 1)


class StyledConv(nn.Module):
    """Modulated 3x3 convolution, noise, bias and activation."""

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        upsample: bool = False,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(
            in_channel,
            out_channel,
            kernel_size,
            style_dim,
            upsample=upsample,
            blur_kernel=blur_kernel,
        )
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel)

    def forward(self, x: Tensor, style: Tensor, noise: Tensor | None = None) -> Tensor:
        return self.activate(self.noise(self.conv(x, style), noise=noise))


class ToRGB(nn.Module):
    """1x1 modulated convolution to RGB (no demodulation), added to the upsampled skip image."""

    def __init__(
        self,
        in_channel: int,
        style_dim: int,
        upsample: bool = True,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None = None) -> Tensor:
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


# --------------------------------------------------------------------------- generator


def generator_channels(size: int, channel_multiplier: int, channel_scale: float) -> dict[int, int]:
    """Feature channels per resolution: 512 up to 32x32, then halving with resolution."""
    channels: dict[int, int] = {}
    for log_res in range(2, int(math.log2(size)) + 1):
        res = 2**log_res
        base = 512 if res <= 32 else 16384 * channel_multiplier // res
        channels[res] = max(1, round(base * channel_scale))
    return channels


class Generator(nn.Module):
    """StyleGAN2 generator: mapping network ``style`` (z -> w) and the synthesis network."""

    def __init__(
        self,
        size: int,
        style_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: int = 2,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
        lr_mlp: float = 0.01,
        channel_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if size < MIN_SIZE or size > MAX_SIZE or size & (size - 1):
            raise ValueError(
                f"size: expected a power of two in [{MIN_SIZE}, {MAX_SIZE}], got {size}"
            )
        if style_dim < 1 or n_mlp < 1 or channel_multiplier < 1:
            raise ValueError(
                "style_dim, n_mlp and channel_multiplier must be >= 1, got "
                f"{style_dim}, {n_mlp}, {channel_multiplier}"
            )
        if not channel_scale > 0:
            raise ValueError(f"channel_scale: expected > 0, got {channel_scale}")
        self.size = size
        self.style_dim = style_dim
        self.log_size = int(math.log2(size))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.n_latent = self.log_size * 2 - 2
        self.channels = generator_channels(size, channel_multiplier, channel_scale)

        self.style = nn.Sequential(
            PixelNorm(),
            *(
                EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activate=True)
                for _ in range(n_mlp)
            ),
        )
        self.input = ConstantInput(self.channels[4])
        self.conv1 = StyledConv(
            self.channels[4], self.channels[4], 3, style_dim, blur_kernel=blur_kernel
        )
        self.to_rgb1 = ToRGB(self.channels[4], style_dim, upsample=False)

        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for layer_idx in range(self.num_layers):
            res = 2 ** ((layer_idx + 5) // 2)
            self.noises.register_buffer(f"noise_{layer_idx}", torch.randn(1, 1, res, res))
        in_channel = self.channels[4]
        for log_res in range(3, self.log_size + 1):
            out_channel = self.channels[2**log_res]
            self.convs.append(
                StyledConv(
                    in_channel, out_channel, 3, style_dim, upsample=True, blur_kernel=blur_kernel
                )
            )
            self.convs.append(
                StyledConv(out_channel, out_channel, 3, style_dim, blur_kernel=blur_kernel)
            )
            self.to_rgbs.append(ToRGB(out_channel, style_dim, blur_kernel=blur_kernel))
            in_channel = out_channel

    # ---- helpers with rosinality's names

    def _dtype_device(self) -> tuple[torch.dtype, torch.device]:
        return self.input.input.dtype, self.input.input.device

    def make_noise(self) -> list[Tensor]:
        """Fresh noise maps, one per noise layer (4x4, then two per resolution)."""
        dtype, device = self._dtype_device()
        return [
            torch.randn(1, 1, 2 ** ((i + 5) // 2), 2 ** ((i + 5) // 2), dtype=dtype, device=device)
            for i in range(self.num_layers)
        ]

    def stored_noise(self) -> list[Tensor]:
        """The noise buffers ``noises.noise_0 … noise_{num_layers-1}``."""
        return [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]

    def mean_latent(self, n_latent: int, generator: torch.Generator | None = None) -> Tensor:
        """Mean of the mapping network's output over ``n_latent`` random z, shape (1, style_dim)."""
        dtype, device = self._dtype_device()
        z_device = generator.device if generator is not None else device
        z = torch.randn(n_latent, self.style_dim, generator=generator, device=z_device)
        return self.style(z.to(device=device, dtype=dtype)).mean(0, keepdim=True)

    def get_latent(self, x: Tensor) -> Tensor:
        """Map z to w with the mapping network."""
        return self.style(x)

    # ---- forward

    def _latent_from_styles(self, styles: list[Tensor], inject_index: int | None) -> Tensor:
        if len(styles) < 2:
            if styles[0].ndim < 3:
                return styles[0].unsqueeze(1).repeat(1, self.n_latent, 1)
            if styles[0].shape[1] != self.n_latent:
                raise ValueError(
                    f"styles: W+ input must have {self.n_latent} latents, got {styles[0].shape[1]}"
                )
            return styles[0]
        if inject_index is None:
            inject_index = random.randint(1, self.n_latent - 1)
        first = styles[0].unsqueeze(1).repeat(1, inject_index, 1)
        second = styles[1].unsqueeze(1).repeat(1, self.n_latent - inject_index, 1)
        return torch.cat([first, second], dim=1)

    def forward(
        self,
        styles: Sequence[Tensor] | Tensor,
        return_latents: bool = False,
        inject_index: int | None = None,
        truncation: float = 1.0,
        truncation_latent: Tensor | None = None,
        input_is_latent: bool = False,
        noise: Sequence[Tensor | None] | None = None,
        randomize_noise: bool = True,
        return_features: bool = False,
        max_resolution: int | None = None,
    ) -> tuple[Tensor, Tensor | None] | tuple[Tensor, Tensor | None, dict[int, Tensor]]:
        """Render images from a list of z (or w / W+ with ``input_is_latent``).

        Returns ``(image, latent or None)``, or ``(image, latent or None, features)`` with
        ``return_features``: features maps each resolution to the activation after the last
        convolution at that resolution. ``max_resolution`` stops the synthesis there (the
        image is then the RGB output at that resolution): features up to it are the same as a
        full render's, for a fraction of the cost.
        """
        dtype, _ = self._dtype_device()
        styles = [styles] if isinstance(styles, Tensor) else list(styles)
        if not styles:
            raise ValueError("styles: expected at least one latent tensor")
        styles = [s.to(dtype) for s in styles]
        if not input_is_latent:
            styles = [self.style(s) for s in styles]

        if noise is None:
            noise = [None] * self.num_layers if randomize_noise else self.stored_noise()
        elif len(noise) != self.num_layers:
            raise ValueError(f"noise: expected {self.num_layers} maps, got {len(noise)}")

        if truncation < 1:
            if truncation_latent is None:
                raise ValueError("truncation_latent: required when truncation < 1")
            truncation_latent = truncation_latent.to(dtype)
            styles = [truncation_latent + truncation * (s - truncation_latent) for s in styles]

        latent = self._latent_from_styles(styles, inject_index)
        features: dict[int, Tensor] = {}

        out = self.input(latent.shape[0])
        out = self.conv1(out, latent[:, 0], noise=noise[0])
        features[4] = out
        skip = self.to_rgb1(out, latent[:, 1])
        for stage, to_rgb in enumerate(self.to_rgbs):
            i = 2 * stage + 1  # index of this stage's first latent and first noise map
            out = self.convs[2 * stage](out, latent[:, i], noise=noise[i])
            out = self.convs[2 * stage + 1](out, latent[:, i + 1], noise=noise[i + 1])
            features[out.shape[-1]] = out
            skip = to_rgb(out, latent[:, i + 2], skip)
            if max_resolution is not None and out.shape[-1] >= max_resolution:
                break

        returned_latent = latent if return_latents else None
        if return_features:
            return skip, returned_latent, features
        return skip, returned_latent


# --------------------------------------------------------------------------- checkpoints


def _indices(state_dict: Mapping[str, Any], pattern: str) -> list[int]:
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for k in state_dict if (m := regex.fullmatch(k))})


def generator_from_state_dict(
    state_dict: Mapping[str, Any], size: int | None = None, what: str = "g_ema"
) -> Generator:
    """Build a Generator whose configuration fits ``state_dict`` and load it strictly.

    Size, style_dim, n_mlp, channel_multiplier and channel_scale are read from the key set and
    shapes; ``size``, when given, must agree with them.
    """
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"{what}: expected a state dict, got {type(state_dict).__name__}")
    for key in ("input.input", "style.1.weight", "conv1.conv.weight"):
        if not isinstance(state_dict.get(key), Tensor):
            raise ValueError(f"{what}: not a StyleGAN2 generator state dict (no tensor {key!r})")
    n_mlp = len(_indices(state_dict, r"style\.(\d+)\.weight"))
    style_dim = state_dict["style.1.weight"].shape[1]
    channel_scale = state_dict["input.input"].shape[1] / 512
    inferred_size = 2 ** (len(_indices(state_dict, r"to_rgbs\.(\d+)\.bias")) + 2)
    if size is not None and size != inferred_size:
        raise ValueError(
            f"{what}: the options say size {size} but the weights are for {inferred_size}"
        )
    channel_multiplier = 2
    weight_64 = state_dict.get("convs.6.conv.weight")  # first conv at 64x64
    if inferred_size >= 64 and isinstance(weight_64, Tensor):
        channel_multiplier = max(1, round(weight_64.shape[1] / (256 * channel_scale)))
    with torch.device("meta"):
        generator = Generator(
            inferred_size, style_dim, n_mlp, channel_multiplier, channel_scale=channel_scale
        )
    check_state_dict(generator, state_dict, what)
    generator = generator.to_empty(device="cpu")
    generator.load_state_dict(state_dict, strict=True)
    return generator


def load_generator(
    path_or_checkpoint: str | os.PathLike[str] | Mapping[str, Any],
    device: str | torch.device = "cpu",
) -> tuple[Generator, Tensor | None]:
    """Load a rosinality StyleGAN2 checkpoint ``{"g_ema": …, "latent_avg": (512,)}``.

    Returns the generator in eval mode on ``device`` and ``latent_avg`` (or None if absent).
    """
    checkpoint = read_checkpoint(path_or_checkpoint, "path_or_checkpoint")
    if "g_ema" not in checkpoint:
        hint = " (a pSp/e4e checkpoint? use load_decoder)" if "state_dict" in checkpoint else ""
        raise ValueError(
            f"path_or_checkpoint: no 'g_ema' key{hint}; top-level keys: {sorted(checkpoint)[:10]}"
        )
    generator = generator_from_state_dict(checkpoint["g_ema"], what="g_ema").to(device).eval()
    latent_avg = checkpoint.get("latent_avg")
    if latent_avg is not None:
        if not isinstance(latent_avg, Tensor) or latent_avg.numel() != generator.style_dim:
            raise ValueError(
                f"latent_avg: expected {generator.style_dim} values, got "
                f"{getattr(latent_avg, 'shape', type(latent_avg).__name__)}"
            )
        latent_avg = latent_avg.reshape(generator.style_dim).to(device)
    return generator, latent_avg
