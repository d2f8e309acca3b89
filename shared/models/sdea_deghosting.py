"""SDEA's deghosting network (Song et al., "Editing Out-of-domain GAN Inversion via
Differential Activations"): a GLEAN-style encoder / StyleGAN2 latent bank / decoder.

Structure and state-dict layout are those of the official ``HaoruiSong622/Editing-Out-of-Domain``
``model/deghosting/{deghosting,stylegan2,modules}.py`` (a re-implementation of mmediting's
``GLEANStyleGANv2``), so ``deghosting.pt`` (a plain state dict, 925 keys) loads strictly:

- ``FCN.encoder.0``: RRDBNet (``conv_first``, ``body.N.rdb{1,2,3}.conv{1..5}``, ``conv_body``,
  ``conv_up`` + leaky ReLU) from the ``in_size`` composite to C(in_size) channels;
- ``FCN.encoder.1..``: stride-2 conv + conv (``.0``/``.2``) down to 4x4, then the latent head
  (``.0`` conv, flatten, ``.3`` Linear) giving the W+ code (B, n_latent, style_dim);
- ``FCN.fusion_out.k`` / ``FCN.fusion_skip.k``: 3x3 convs merging the encoder feature at
  4·2^k px into the generator's features / RGB skip before each synthesis stage up to
  ``in_size``;
- ``FCN.decoder``: PixelShufflePack (``upsample_conv``) blocks from ``in_size`` to
  ``out_size`` that also take the generator features above ``in_size``, then
  ``conv 64 → leaky ReLU → conv 3``;
- ``generator``: a frozen StyleGAN2 generator in mmgen naming (``style_mapping.N.linear.
  weight_orig``/``.bias``, ``constant_input.input``, ``conv1``/``convs.N`` with
  ``conv.weight_orig``, ``conv.style_modulation.{linear.weight_orig,bias}``,
  ``noise_injector.weight``, ``activate.bias``, ``to_rgb1``/``to_rgbs.N``, fixed noise
  buffers ``injected_noise_N``). Its mapping network is unused: the encoder gives W+.

With ``in_size=128, out_size=1024`` the network has 174,196,615 parameters (FCN 143,826,555 +
generator 30,370,060). ``channel_scale`` scales every width (and ``num_rrdbs`` the depth) for
toy configurations, with the same key names.

The mmgen layers compute exactly what rosinality's do (equalized-lr scale 1/sqrt(fan_in), lr
multipliers, modulation bias init 1, blur pads), so they reuse the layers of
:mod:`shared.models.stylegan2` under mmgen's parameter names;
:func:`mmgen_generator_state_dict` converts a rosinality ``g_ema`` into the latent-bank layout.

Input and output are images in [-1, 1], (B, 3, in_size, in_size) → (B, 3, out_size, out_size);
the output is not clamped (as in the official code). Differences from the official code, none
of which changes a key, a shape or an output: the RGB skip of stages after the last fusion
(never used) is not computed; the unused mapping network's PixelNorm is rosinality's (eps 1e-8
inside the root instead of mmgen's 1e-6 outside it); a wrong input size raises ValueError.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from shared.models import stylegan2 as sg2
from shared.models.checkpoints import check_state_dict, read_checkpoint

DEFAULT_BLUR_KERNEL = (1, 3, 3, 1)
RRDB_CHANNELS, RRDB_GROWTH, DECODER_CHANNELS = 64, 32, 64
RESIDUAL_SCALE = 0.2
LEAKY_SLOPE = 0.2


def _width(channels: int, channel_scale: float) -> int:
    return max(1, round(channels * channel_scale))


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


# --------------------------------------------------------------------------- FCN blocks


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs; the output is scaled by 0.2 and added to the input."""

    def __init__(self, mid_channels: int = 64, growth_channels: int = 32) -> None:
        super().__init__()
        for i in range(5):
            out_channels = mid_channels if i == 4 else growth_channels
            self.add_module(
                f"conv{i + 1}", nn.Conv2d(mid_channels + i * growth_channels, out_channels, 3, 1, 1)
            )

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for i in range(1, 5):
            conv = getattr(self, f"conv{i}")
            features.append(F.leaky_relu(conv(torch.cat(features, 1)), LEAKY_SLOPE))
        return self.conv5(torch.cat(features, 1)) * RESIDUAL_SCALE + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks with a scaled skip."""

    def __init__(self, mid_channels: int, growth_channels: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(mid_channels, growth_channels)
        self.rdb2 = ResidualDenseBlock(mid_channels, growth_channels)
        self.rdb3 = ResidualDenseBlock(mid_channels, growth_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * RESIDUAL_SCALE + x


class RRDBNet(nn.Module):
    """ESRGAN trunk without upsampling: conv, RRDBs, conv (+ long skip), conv to ``num_out``."""

    def __init__(
        self,
        num_in: int = 3,
        num_mid: int = 64,
        num_out: int = 256,
        num_blocks: int = 23,
        num_grow: int = 32,
    ) -> None:
        super().__init__()
        self.conv_first = nn.Conv2d(num_in, num_mid, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_mid, num_grow) for _ in range(num_blocks)))
        self.conv_body = nn.Conv2d(num_mid, num_mid, 3, 1, 1)
        self.conv_up = nn.Conv2d(num_mid, num_out, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        return F.leaky_relu(self.conv_up(feat), LEAKY_SLOPE)


class PixelShufflePack(nn.Module):
    """3x3 conv to ``out_channels·scale²`` channels, then pixel shuffle (sub-pixel upsampling)."""

    def __init__(
        self, in_channels: int, out_channels: int, scale_factor: int, upsample_kernel: int
    ) -> None:
        super().__init__()
        self.scale_factor = scale_factor
        self.upsample_conv = nn.Conv2d(
            in_channels,
            out_channels * scale_factor * scale_factor,
            upsample_kernel,
            padding=(upsample_kernel - 1) // 2,
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.pixel_shuffle(self.upsample_conv(x), self.scale_factor)


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(LEAKY_SLOPE)


class FCN(nn.Module):
    """The trainable part: encoder (RRDBNet, down blocks, latent head), fusion convs, decoder."""

    def __init__(
        self,
        in_size: int,
        out_size: int,
        img_channels: int = 3,
        style_channels: int = 512,
        channel_scale: float = 1.0,
        num_rrdbs: int = 23,
    ) -> None:
        super().__init__()
        self.in_size = in_size
        self.style_channels = style_channels
        channels = sg2.generator_channels(out_size, 2, channel_scale)
        log_in, log_out = int(math.log2(in_size)), int(math.log2(out_size))
        n_latent = 2 * log_out - 2

        self.encoder = nn.ModuleList()
        self.encoder.append(
            RRDBNet(
                img_channels,
                _width(RRDB_CHANNELS, channel_scale),
                channels[in_size],
                num_rrdbs,
                _width(RRDB_GROWTH, channel_scale),
            )
        )
        for res in (2**i for i in range(log_in, 2, -1)):
            c_in, c_out = channels[res], channels[res // 2]
            self.encoder.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c_out, 3, 2, 1), _lrelu(), nn.Conv2d(c_out, c_out, 3, 1, 1),
                    _lrelu(),
                )
            )
        self.encoder.append(  # latent head on the 4x4 feature
            nn.Sequential(
                nn.Conv2d(channels[4], channels[4], 3, 1, 1),
                _lrelu(),
                nn.Flatten(),
                nn.Linear(16 * channels[4], n_latent * style_channels),
            )
        )

        self.fusion_out = nn.ModuleList()
        self.fusion_skip = nn.ModuleList()
        for res in (2**i for i in range(2, log_in + 1)):
            self.fusion_out.append(nn.Conv2d(channels[res] * 2, channels[res], 3, 1, 1))
            self.fusion_skip.append(nn.Conv2d(channels[res] + 3, 3, 3, 1, 1))

        self.decoder = nn.ModuleList()
        for res in (2**i for i in range(log_in, log_out + 1)):
            c_in = channels[res] if res == in_size else 2 * channels[res]
            if res < out_size:
                self.decoder.append(PixelShufflePack(c_in, channels[res * 2], 2, 3))
            else:
                hidden = _width(DECODER_CHANNELS, channel_scale)
                self.decoder.append(
                    nn.Sequential(
                        nn.Conv2d(c_in, hidden, 3, 1, 1), _lrelu(),
                        nn.Conv2d(hidden, img_channels, 3, 1, 1),
                    )
                )


# --------------------------------------------------------------------------- latent bank


class EqualizedLinear(nn.Module):
    """mmgen ``EqualizedLRLinearModule`` without bias: weight ``weight_orig`` · lr_mul/sqrt(in)."""

    def __init__(self, in_dim: int, out_dim: int, lr_mul: float = 1.0) -> None:
        super().__init__()
        self.weight_orig = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.scale = lr_mul / math.sqrt(in_dim)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_orig * self.scale)


class EqualLinearActModule(nn.Module):
    """mmgen ``EqualLinearActModule``: equalized linear, bias·lr_mul, optional fused lrelu."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        lr_mul: float = 1.0,
        bias_init: float = 0.0,
        activate: bool = False,
    ) -> None:
        super().__init__()
        self.linear = EqualizedLinear(in_dim, out_dim, lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: Tensor) -> Tensor:
        x = self.linear(x.reshape(x.shape[0], -1) if x.ndim >= 3 else x)
        if self.activate:
            return sg2.fused_leaky_relu(x, self.bias * self.lr_mul)
        return x + self.bias * self.lr_mul


class ModulatedConv2d(sg2.ModulatedConv2d):
    """rosinality's modulated convolution under mmgen's names: the convolution weight is
    ``weight_orig`` and the style affine is ``style_modulation`` (``linear.weight_orig``,
    ``bias``). Same scales and bias init, so the inherited forward is mmgen's computation.
    """

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        blur_kernel: Sequence[float] = DEFAULT_BLUR_KERNEL,
    ) -> None:
        super().__init__(
            in_channel, out_channel, kernel_size, style_dim, demodulate, upsample, blur_kernel
        )
        self.weight_orig = self._parameters.pop("weight")
        del self.modulation
        self.style_modulation = EqualLinearActModule(style_dim, in_channel, bias_init=1.0)

    # The inherited forward reads ``self.weight`` and ``self.modulation``.
    @property
    def weight(self) -> Tensor:  # type: ignore[override]
        return self.weight_orig

    @property
    def modulation(self) -> nn.Module:  # type: ignore[override]
        return self.style_modulation


class ModulatedStyleConv(nn.Module):
    """mmgen ``ModulatedStyleConv``: modulated conv, noise (``noise_injector``), bias + lrelu."""

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        style_dim: int,
        upsample: bool = False,
        blur_kernel: Sequence[float] = DEFAULT_BLUR_KERNEL,
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(
            in_channel, out_channel, 3, style_dim, upsample=upsample, blur_kernel=blur_kernel
        )
        self.noise_injector = sg2.NoiseInjection()
        self.activate = sg2.FusedLeakyReLU(out_channel)

    def forward(self, x: Tensor, style: Tensor, noise: Tensor | None = None) -> Tensor:
        return self.activate(self.noise_injector(self.conv(x, style), noise=noise))


class ModulatedToRGB(nn.Module):
    """mmgen ``ModulatedToRGB``: 1x1 modulated conv (no demodulation) + bias + upsampled skip."""

    def __init__(
        self,
        in_channel: int,
        style_dim: int,
        upsample: bool = True,
        blur_kernel: Sequence[float] = DEFAULT_BLUR_KERNEL,
    ) -> None:
        super().__init__()
        if upsample:
            self.upsample = sg2.Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None = None) -> Tensor:
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


class StyleGANv2Generator(nn.Module):
    """StyleGAN2 (config-f) generator in mmgen's layout, with fixed ``injected_noise_N`` maps.

    Only the layers are used by :class:`Deghosting`; ``style_mapping`` (z → w) exists for the
    checkpoint layout.
    """

    def __init__(
        self,
        out_size: int,
        style_channels: int = 512,
        num_mlps: int = 8,
        lr_mlp: float = 0.01,
        channel_scale: float = 1.0,
        blur_kernel: Sequence[float] = DEFAULT_BLUR_KERNEL,
    ) -> None:
        super().__init__()
        self.out_size = out_size
        self.style_channels = style_channels
        self.channels = sg2.generator_channels(out_size, 2, channel_scale)
        self.log_size = int(math.log2(out_size))
        self.num_latents = 2 * self.log_size - 2
        self.num_injected_noises = self.num_latents - 1

        self.style_mapping = nn.Sequential(
            sg2.PixelNorm(),
            *(
                EqualLinearActModule(style_channels, style_channels, lr_mul=lr_mlp, activate=True)
                for _ in range(num_mlps)
            ),
        )
        self.constant_input = sg2.ConstantInput(self.channels[4])
        self.conv1 = ModulatedStyleConv(
            self.channels[4], self.channels[4], style_channels, blur_kernel=blur_kernel
        )
        self.to_rgb1 = ModulatedToRGB(self.channels[4], style_channels, upsample=False)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_channel, blur = self.channels[4], blur_kernel
        for log_res in range(3, self.log_size + 1):
            out_channel = self.channels[2**log_res]
            self.convs.append(
                ModulatedStyleConv(
                    in_channel, out_channel, style_channels, upsample=True, blur_kernel=blur
                )
            )
            self.convs.append(
                ModulatedStyleConv(out_channel, out_channel, style_channels, blur_kernel=blur)
            )
            self.to_rgbs.append(ModulatedToRGB(out_channel, style_channels, blur_kernel=blur))
            in_channel = out_channel
        for i in range(self.num_injected_noises):
            res = 2 ** ((i + 5) // 2)
            self.register_buffer(f"injected_noise_{i}", torch.randn(1, 1, res, res))

    def injected_noise(self) -> list[Tensor]:
        return [getattr(self, f"injected_noise_{i}") for i in range(self.num_injected_noises)]


def mmgen_generator_state_dict(rosinality_state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename a rosinality ``Generator`` state dict (e.g. ``g_ema``) to the latent-bank layout.

    ``noises.noise_N`` become ``injected_noise_N``; the values are unchanged (both codes use
    the same equalized-lr parametrisation).
    """
    rules = (
        (r"style\.(\d+)\.weight", r"style_mapping.\1.linear.weight_orig"),
        (r"style\.(\d+)\.bias", r"style_mapping.\1.bias"),
        (r"input\.input", "constant_input.input"),
        (r"noises\.noise_(\d+)", r"injected_noise_\1"),
        (r"(.*)\.conv\.weight", r"\1.conv.weight_orig"),
        (r"(.*)\.conv\.modulation\.weight", r"\1.conv.style_modulation.linear.weight_orig"),
        (r"(.*)\.conv\.modulation\.bias", r"\1.conv.style_modulation.bias"),
        (r"(.*)\.noise\.weight", r"\1.noise_injector.weight"),
    )
    renamed = {}
    for key, value in rosinality_state_dict.items():
        for pattern, replacement in rules:
            if re.fullmatch(pattern, key):
                key = re.sub(pattern, replacement, key)
                break
        renamed[key] = value
    return renamed


# --------------------------------------------------------------------------- the network


class Deghosting(nn.Module):
    """SDEA deghosting: ``in_size`` composite in [-1, 1] → ``out_size`` image in [-1, 1]."""

    def __init__(
        self,
        in_size: int = 128,
        out_size: int = 1024,
        style_dim: int = 512,
        channel_scale: float = 1.0,
        num_rrdbs: int = 23,
        num_mlps: int = 8,
    ) -> None:
        super().__init__()
        if not (_is_power_of_two(out_size) and 8 <= out_size <= sg2.MAX_SIZE):
            raise ValueError(f"out_size: expected a power of two in [8, 1024], got {out_size}")
        if not (_is_power_of_two(in_size) and 4 <= in_size <= out_size):
            raise ValueError(
                f"in_size: expected a power of two in [4, out_size={out_size}], got {in_size}"
            )
        if style_dim < 1 or num_rrdbs < 0 or num_mlps < 1:
            raise ValueError(
                "style_dim and num_mlps must be >= 1 and num_rrdbs >= 0, got "
                f"{style_dim}, {num_mlps}, {num_rrdbs}"
            )
        if not channel_scale > 0:
            raise ValueError(f"channel_scale: expected > 0, got {channel_scale}")
        self.in_size = in_size
        self.out_size = out_size
        self.config = {
            "in_size": in_size,
            "out_size": out_size,
            "style_dim": style_dim,
            "channel_scale": channel_scale,
            "num_rrdbs": num_rrdbs,
            "num_mlps": num_mlps,
        }
        # Attribute names are the official ones (they are the state-dict prefixes).
        self.FCN = FCN(in_size, out_size, 3, style_dim, channel_scale, num_rrdbs)
        self.generator = StyleGANv2Generator(
            out_size, style_dim, num_mlps, channel_scale=channel_scale
        )
        self.generator.requires_grad_(False)

    def forward(self, lq: Tensor) -> Tensor:
        if lq.ndim != 4 or lq.shape[1] != 3 or lq.shape[-2:] != (self.in_size, self.in_size):
            raise ValueError(
                f"lq: expected shape (B, 3, {self.in_size}, {self.in_size}), got {tuple(lq.shape)}"
            )
        fcn, gen = self.FCN, self.generator
        encoder_feats = []
        feat = lq
        for block in fcn.encoder:
            feat = block(feat)
            encoder_feats.append(feat)
        latent = encoder_feats.pop().view(lq.shape[0], -1, fcn.style_channels)
        encoder_feats.reverse()  # 4x4 first, in_size last

        noise = gen.injected_noise()
        out = gen.constant_input(lq.shape[0])
        out = gen.conv1(out, latent[:, 0], noise=noise[0])
        skip = gen.to_rgb1(out, latent[:, 1])
        generator_feats = []
        for stage, to_rgb in enumerate(gen.to_rgbs):
            i = 2 * stage + 1  # this stage's first latent and noise index
            if out.shape[-1] <= self.in_size:
                feat = encoder_feats[stage]
                out = fcn.fusion_out[stage](torch.cat([out, feat], 1))
                skip = fcn.fusion_skip[stage](torch.cat([skip, feat], 1))
            out = gen.convs[2 * stage](out, latent[:, i], noise=noise[i])
            out = gen.convs[2 * stage + 1](out, latent[:, i + 1], noise=noise[i + 1])
            if out.shape[-1] <= self.in_size:  # the RGB skip is only used by later fusions
                skip = to_rgb(out, latent[:, i + 2], skip)
            else:
                generator_feats.append(out)

        hr = encoder_feats[-1]
        for i, block in enumerate(fcn.decoder):
            if i > 0:
                hr = torch.cat([hr, generator_feats[i - 1]], 1)
            hr = block(hr)
        return hr


# --------------------------------------------------------------------------- loading


def _count(state_dict: Mapping[str, Any], pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for k in state_dict if (m := regex.fullmatch(k))})


def deghosting_config(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`Deghosting` arguments that fit an official-layout state dict."""
    required = (
        "generator.constant_input.input",
        "generator.style_mapping.1.linear.weight_orig",
        "FCN.encoder.0.conv_first.weight",
    )
    for key in required:
        if not isinstance(state_dict.get(key), Tensor):
            raise ValueError(
                f"path_or_state_dict: not an SDEA deghosting state dict (no tensor {key!r}); "
                f"first keys: {list(state_dict)[:5]}"
            )
    return {
        "in_size": 2 ** (_count(state_dict, r"FCN\.fusion_out\.(\d+)\.weight") + 1),
        "out_size": 2 ** (_count(state_dict, r"generator\.to_rgbs\.(\d+)\.bias") + 2),
        "style_dim": int(state_dict["generator.style_mapping.1.linear.weight_orig"].shape[1]),
        "channel_scale": state_dict["generator.constant_input.input"].shape[1] / 512,
        "num_rrdbs": _count(state_dict, r"FCN\.encoder\.0\.body\.(\d+)\.rdb1\.conv1\.weight"),
        "num_mlps": _count(state_dict, r"generator\.style_mapping\.(\d+)\.bias"),
    }


def load_deghosting(
    path_or_state_dict: str | os.PathLike[str] | Mapping[str, Any],
    device: str | torch.device = "cpu",
) -> Deghosting:
    """Load SDEA's ``deghosting.pt`` (a plain state dict) or a toy state dict of that layout.

    The configuration is inferred from the keys and shapes and the load is strict; the network
    is returned in eval mode on ``device``. Raises ValueError for anything else.
    """
    state_dict = read_checkpoint(path_or_state_dict, "path_or_state_dict")
    try:
        config = deghosting_config(state_dict)
        with torch.device("meta"):
            net = Deghosting(**config)
    except ValueError as exc:
        raise ValueError(f"path_or_state_dict: not SDEA deghosting weights: {exc}") from exc
    check_state_dict(net, state_dict, "path_or_state_dict")
    net = net.to_empty(device=device)  # every tensor is overwritten by the strict load
    net.load_state_dict(state_dict, strict=True)
    return net.eval()


__all__ = [
    "FCN",
    "RRDB",
    "Deghosting",
    "EqualLinearActModule",
    "ModulatedConv2d",
    "ModulatedStyleConv",
    "ModulatedToRGB",
    "PixelShufflePack",
    "RRDBNet",
    "ResidualDenseBlock",
    "StyleGANv2Generator",
    "deghosting_config",
    "load_deghosting",
    "mmgen_generator_state_dict",
]
