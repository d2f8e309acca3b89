"""GAN-inversion encoders: pSp's GradualStyleEncoder (Richardson et al., "Encoding in Style")
and e4e's Encoder4Editing (Tov et al., "Designing an Encoder for StyleGAN Image Manipulation").

Both read an IR-SE50 feature pyramid (strides 4, 8 and 16) and predict one style vector per
W+ layer; state-dict keys match the ``encoder.`` part of the official checkpoints.
``WPlusEncoder`` adds ``latent_avg`` the way the official pSp/e4e forward does, and
``load_encoder`` / ``load_decoder`` read the official checkpoint files.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from shared.models.checkpoints import check_state_dict, read_checkpoint
from shared.models.irse import STAGE_UNITS, build_body, build_input_layer, scaled
from shared.models.stylegan2 import EqualLinear, Generator, generator_from_state_dict

COARSE_END = 3  # styles 0-2 read the stride-16 map (c3)
MIDDLE_END = 7  # styles 3-6 read the stride-8 map (p2); the rest read the stride-4 map (p1)
STEM_CHANNELS = 64
MEAN_LATENT_SAMPLES = 10_000
MEAN_LATENT_SEED = 0


class GradualStyleBlock(nn.Module):
    """Stride-2 3x3 convs (LeakyReLU) down to 1x1, then an equalized linear layer."""

    def __init__(self, in_c: int, out_c: int, spatial: int) -> None:
        super().__init__()
        self.out_c = out_c
        self.spatial = spatial
        num_convs = max(1, int(math.log2(spatial)))
        layers: list[nn.Module] = []
        for i in range(num_convs):
            layers += [
                nn.Conv2d(in_c if i == 0 else out_c, out_c, kernel_size=3, stride=2, padding=1),
                nn.LeakyReLU(),
            ]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(out_c, out_c)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.convs(x).flatten(1))


def upsample_add(x: Tensor, y: Tensor) -> Tensor:
    """Bilinearly resize ``x`` to ``y``'s size (align_corners=True) and add ``y`` (FPN merge)."""
    return F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=True) + y


class PyramidEncoder(nn.Module):
    """IR-SE backbone, FPN lateral layers and one GradualStyleBlock per style."""

    def __init__(
        self,
        num_layers: int = 50,
        mode: str = "ir_se",
        n_styles: int = 18,
        input_nc: int = 3,
        style_dim: int = 512,
        input_size: int = 256,
        channel_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if num_layers not in STAGE_UNITS:
            raise ValueError(f"num_layers: expected one of {sorted(STAGE_UNITS)}, got {num_layers}")
        for name, value in (
            ("n_styles", n_styles),
            ("input_nc", input_nc),
            ("style_dim", style_dim),
        ):
            if value < 1:
                raise ValueError(f"{name}: expected >= 1, got {value}")
        if input_size < 32 or input_size & (input_size - 1):
            raise ValueError(f"input_size: expected a power of two >= 32, got {input_size}")
        if not channel_scale > 0:
            raise ValueError(f"channel_scale: expected > 0, got {channel_scale}")
        self.n_styles = n_styles
        self.input_nc = input_nc
        self.style_dim = style_dim
        self.input_size = input_size

        self.input_layer = build_input_layer(input_nc, scaled(STEM_CHANNELS, channel_scale))
        self.body, stage_ends, stage_channels = build_body(num_layers, mode, channel_scale)
        # c1, c2, c3: outputs of stages 2, 3, 4 (strides 4, 8, 16); units 6, 20, 23 in IR-50.
        self.tap_indices = tuple(stage_ends[1:])
        c1_channels, c2_channels, c3_channels = stage_channels[1:]

        spatial_c3 = input_size // 16
        self.styles = nn.ModuleList()
        for i in range(n_styles):
            level = 0 if i < COARSE_END else 1 if i < MIDDLE_END else 2  # c3, p2, p1
            self.styles.append(GradualStyleBlock(c3_channels, style_dim, spatial_c3 * 2**level))
        self.latlayer1 = nn.Conv2d(c2_channels, c3_channels, kernel_size=1)
        self.latlayer2 = nn.Conv2d(c1_channels, c3_channels, kernel_size=1)

    def check_input(self, x: Tensor) -> None:
        expected = (self.input_nc, self.input_size, self.input_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"x: expected a batch of shape (B, {self.input_nc}, {self.input_size}, "
                f"{self.input_size}), got {tuple(x.shape)}"
            )

    def backbone(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The stride-4, -8 and -16 feature maps (c1, c2, c3)."""
        self.check_input(x)
        x = self.input_layer(x)
        taps = []
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in self.tap_indices:
                taps.append(x)
            if i == self.tap_indices[-1]:
                break
        c1, c2, c3 = taps
        return c1, c2, c3

    def style_inputs(self, c1: Tensor, c2: Tensor, c3: Tensor) -> Iterator[Tensor]:
        """The feature map each style reads, computing the FPN levels only when needed."""
        p2 = p1 = None
        for i in range(self.n_styles):
            if i < COARSE_END:
                yield c3
                continue
            if p2 is None:
                p2 = upsample_add(c3, self.latlayer1(c2))
            if i < MIDDLE_END:
                yield p2
                continue
            if p1 is None:
                p1 = upsample_add(p2, self.latlayer2(c1))
            yield p1


class GradualStyleEncoder(PyramidEncoder):
    """pSp: each style vector predicted independently from its pyramid level."""

    def forward(self, x: Tensor) -> Tensor:
        features = self.style_inputs(*self.backbone(x))
        return torch.stack(
            [style(f) for style, f in zip(self.styles, features, strict=True)], dim=1
        )


class Encoder4Editing(PyramidEncoder):
    """e4e: one base code w0 (from the coarsest level) plus a per-layer offset for layers 1+."""

    def forward(self, x: Tensor) -> Tensor:
        features = self.style_inputs(*self.backbone(x))
        w0 = self.styles[0](next(features))
        latents = [w0] + [w0 + style(f) for style, f in zip(self.styles[1:], features, strict=True)]
        return torch.stack(latents, dim=1)


ENCODER_TYPES: dict[str, type[PyramidEncoder]] = {
    "GradualStyleEncoder": GradualStyleEncoder,
    "Encoder4Editing": Encoder4Editing,
}


class WPlusEncoder(nn.Module):
    """Image in [-1, 1] -> W+ codes (B, n_styles, style_dim), ``latent_avg`` included."""

    def __init__(
        self, encoder: PyramidEncoder, latent_avg: Tensor, start_from_latent_avg: bool = True
    ) -> None:
        super().__init__()
        n_styles, style_dim = encoder.n_styles, encoder.style_dim
        rows = latent_avg.reshape(-1, style_dim) if latent_avg.numel() % style_dim == 0 else None
        if rows is None or rows.shape[0] not in (1, n_styles):
            raise ValueError(
                f"latent_avg: expected ({style_dim},), (1, {style_dim}) or ({n_styles}, "
                f"{style_dim}), got {tuple(latent_avg.shape)}"
            )
        self.encoder = encoder
        self.register_buffer("latent_avg", rows.expand(n_styles, style_dim).clone())
        # The official forward adds latent_avg only when trained with --start_from_latent_avg.
        self.start_from_latent_avg = start_from_latent_avg

    @property
    def input_size(self) -> int:
        return self.encoder.input_size

    @property
    def n_styles(self) -> int:
        return self.encoder.n_styles

    def forward(self, x: Tensor) -> Tensor:
        codes = self.encoder(x)
        if self.start_from_latent_avg:
            codes = codes + self.latent_avg.to(codes.dtype)
        return codes


# --------------------------------------------------------------------------- checkpoints

_E4E_ONLY_OPTS = (
    "stylegan_size",
    "progressive_steps",
    "delta_norm_lambda",
    "w_discriminator_lambda",
)
_PSP_ONLY_OPTS = ("output_size", "label_nc", "learn_in_w")


def _split_checkpoint(checkpoint: dict) -> tuple[Mapping[str, Any], dict]:
    if "state_dict" in checkpoint:
        state_dict = checkpoint["state_dict"]
    elif any(str(k).startswith(("encoder.", "decoder.")) for k in checkpoint):
        state_dict = checkpoint  # the official get_keys() accepts a bare state dict too
    else:
        hint = " (a StyleGAN2 checkpoint? use load_generator)" if "g_ema" in checkpoint else ""
        raise ValueError(
            f"path_or_checkpoint: no 'state_dict' key{hint}; "
            f"top-level keys: {sorted(checkpoint)[:10]}"
        )
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"state_dict: expected a dict, got {type(state_dict).__name__}")
    opts = checkpoint.get("opts") or {}
    if not isinstance(opts, Mapping):
        opts = vars(opts) if hasattr(opts, "__dict__") else {}
    return state_dict, dict(opts)


def _with_prefix(state_dict: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}


def _count(state_dict: Mapping[str, Any], pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for k in state_dict if (m := regex.fullmatch(k))})


def _encoder_type(requested: str | None, opts: dict, state_dict: Mapping[str, Any]) -> str:
    name = requested or opts.get("encoder_type")
    if name is not None:
        if name not in ENCODER_TYPES:
            raise ValueError(
                f"encoder_type: {name!r} is not supported; expected one of {sorted(ENCODER_TYPES)}"
            )
        return name
    if "styles.0.linear.weight" not in state_dict:
        raise ValueError(
            "encoder: no 'styles.0.linear.weight'; only the W+ encoders "
            f"{sorted(ENCODER_TYPES)} are supported"
        )
    # pSp and e4e encoders have identical keys; only the training options tell them apart.
    for name, keys in (
        ("Encoder4Editing", _E4E_ONLY_OPTS),
        ("GradualStyleEncoder", _PSP_ONLY_OPTS),
    ):
        if any(k in opts for k in keys):
            warnings.warn(
                f"opts has no encoder_type; assuming {name} from its options", stacklevel=3
            )
            return name
    raise ValueError(
        "encoder_type: the checkpoint does not say whether it is pSp or e4e (same keys); pass "
        "encoder_type='GradualStyleEncoder' or 'Encoder4Editing'"
    )


def _encoder_config(state_dict: Mapping[str, Any], opts: dict) -> dict[str, Any]:
    """Constructor arguments that fit an encoder state dict (``encoder.`` prefix removed)."""
    stem = state_dict.get("input_layer.0.weight")
    if not isinstance(stem, Tensor) or stem.ndim != 4:
        raise ValueError("encoder: no tensor 'input_layer.0.weight' (the input convolution)")
    n_units = _count(state_dict, r"body\.(\d+)\.res_layer\.1\.weight")
    depth_by_units = {sum(units): depth for depth, units in STAGE_UNITS.items()}
    if n_units not in depth_by_units:
        raise ValueError(f"encoder: {n_units} residual units fit no IR-50/100/152 backbone")
    input_nc = stem.shape[1]
    if "input_nc" in opts and opts["input_nc"] != input_nc:
        warnings.warn(
            f"opts input_nc={opts['input_nc']} but encoder.input_layer.0.weight takes {input_nc} "
            f"channels; building the encoder for {input_nc}",
            stacklevel=3,
        )
    style_convs = _count(state_dict, r"styles\.0\.convs\.(\d+)\.weight")
    linear = state_dict.get("styles.0.linear.weight")
    if style_convs == 0 or not isinstance(linear, Tensor):
        raise ValueError("encoder: styles.0 has no convs or no linear layer")
    return {
        "num_layers": depth_by_units[n_units],
        "mode": "ir_se" if "body.0.res_layer.5.fc1.weight" in state_dict else "ir",
        "n_styles": _count(state_dict, r"styles\.(\d+)\.linear\.weight"),
        "input_nc": input_nc,
        "style_dim": linear.shape[0],
        "input_size": 16 * 2**style_convs,
        "channel_scale": stem.shape[0] / STEM_CHANNELS,
    }


def _decoder(state_dict: Mapping[str, Any], opts: dict) -> Generator:
    decoder_state = _with_prefix(state_dict, "decoder.")
    if not decoder_state:
        raise ValueError("state_dict: no 'decoder.' keys")
    size = opts.get("output_size") or opts.get("stylegan_size")
    return generator_from_state_dict(decoder_state, size=size, what="decoder")


def load_encoder(
    path_or_checkpoint: str | os.PathLike[str] | Mapping[str, Any],
    device: str | torch.device = "cpu",
    encoder_type: str | None = None,
) -> WPlusEncoder:
    """Load a pSp or e4e checkpoint as a ``WPlusEncoder`` (eval mode, on ``device``).

    The class comes from ``encoder_type`` or ``opts["encoder_type"]``; the architecture from the
    weights. A missing ``latent_avg`` is computed as e4e does: the mean mapping-network output
    of the decoder over 10,000 samples (seeded, so loads are reproducible).
    """
    checkpoint = read_checkpoint(path_or_checkpoint, "path_or_checkpoint")
    state_dict, opts = _split_checkpoint(checkpoint)
    encoder_state = _with_prefix(state_dict, "encoder.")
    if not encoder_state:
        raise ValueError("state_dict: no 'encoder.' keys")
    cls = ENCODER_TYPES[_encoder_type(encoder_type, opts, encoder_state)]
    with torch.device("meta"):
        encoder = cls(**_encoder_config(encoder_state, opts))
    check_state_dict(encoder, encoder_state, "encoder")
    encoder = encoder.to_empty(device="cpu")
    encoder.load_state_dict(encoder_state, strict=True)

    start_from_latent_avg = bool(opts.get("start_from_latent_avg", True))
    latent_avg = checkpoint.get("latent_avg")
    if latent_avg is None and start_from_latent_avg:
        warnings.warn(
            f"checkpoint has no latent_avg; using the decoder's mean w over "
            f"{MEAN_LATENT_SAMPLES} samples (seed {MEAN_LATENT_SEED}), as e4e does",
            stacklevel=2,
        )
        generator = torch.Generator().manual_seed(MEAN_LATENT_SEED)
        with torch.no_grad():
            latent_avg = _decoder(state_dict, opts).mean_latent(MEAN_LATENT_SAMPLES, generator)
    elif latent_avg is None:
        latent_avg = torch.zeros(encoder.style_dim)
    if not isinstance(latent_avg, Tensor):
        raise ValueError(f"latent_avg: expected a tensor, got {type(latent_avg).__name__}")
    model = WPlusEncoder(encoder, latent_avg.float(), start_from_latent_avg)
    return model.to(device).eval()


def load_decoder(
    path_or_checkpoint: str | os.PathLike[str] | Mapping[str, Any],
    device: str | torch.device = "cpu",
) -> Generator:
    """The ``decoder.`` part of a pSp/e4e checkpoint as a Generator (eval mode, on ``device``)."""
    checkpoint = read_checkpoint(path_or_checkpoint, "path_or_checkpoint")
    state_dict, opts = _split_checkpoint(checkpoint)
    return _decoder(state_dict, opts).to(device).eval()
