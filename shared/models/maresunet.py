"""MAResU-Net (Li et al., "Multi-stage Attention ResU-Net"), the paper's artifact suppressor.

Structure and state-dict layout are those of the official ``lironui/MAResU-Net``
``MAResUNet.py`` (370 keys; 26,275,643 parameters with 3 outputs):

- ResNet-34 encoder: ``firstconv``/``firstbn``/``firstrelu``/``firstmaxpool``, ``encoder1..4``
  (torchvision ResNet-34 ``conv1``/``bn1``/``relu``/``maxpool``/``layer1..4``);
- ``attention4`` (a ``PAM_CAM_Layer``) on the bottleneck e4 and ``attention3/2/1`` on the skips
  e3/e2/e1: a 3×3 conv+ReLU, then linear-attention PAM and channel-attention CAM branches
  (each Dropout2d + 1×1 conv + ReLU), summed, then Dropout2d + 1×1 conv + ReLU;
- LinkNet ``DecoderBlock`` s ``decoder4..1`` with additive skips:
  ``d4 = decoder4(att4(e4)) + att3(e3)``, ``d3 = decoder3(d4) + att2(e2)``,
  ``d2 = decoder2(d3) + att1(e1)``, ``d1 = decoder1(d2)``;
- head ``finaldeconv1`` (4×4/2 transposed conv) → ReLU → ``finalconv2`` → ReLU → ``finalconv3``.

The output is raw (no activation), as in the official code. Differences from the official
file, none of which changes a key, shape or (for square inputs whose sides are multiples of
32) an output beyond float rounding:

- the attention modules reshape with (H, W) (the official code swaps them, so it fails on
  non-square inputs); inputs whose sides are not multiples of 32 are padded on the bottom
  and right (reflect; replicate when the input is too small to reflect) and the output is
  cropped back;
- the PAM sums are computed as means (same value); its denominator Σ_j (1 + q̂ᵀk̂_j) is
  clamped to ≥ eps (it reaches 0 only when every k̂_j = −q̂_n, where the official code
  divides by ~0); both attention cores run in at least float32 with autocast off, so
  fp16/bf16 inputs do not overflow (N = H·W reaches 65,536 at a 1024² input, beyond
  fp16's range);
- ``num_channels`` is honoured (the official code ignores it) and ``base_width`` (64 =
  official) scales every channel count for toy configurations, with the same key names.

Parametrisation used by facedit for image-to-image suppression: the network receives the
naive composite ``x`` in [-1, 1] and predicts a residual, ``out = x + net(x)``;
:func:`residual_refine` does this for images in [0, 1] and clamps the result. A
*mask-conditioned* variant (facedit's, not the paper's: ``num_channels = 4``) also gets the
blend mask as a fourth input channel — without it the network must find the edited region
from the seams alone, which a small CPU-trained network did not learn to do on unseen faces
(bench/RESULTS.md). Only ``firstconv.weight`` changes shape, (64, 4, 7, 7).

``composite`` says which naive composite the network was trained on, so that the suppressor
feeds it the same: ``"soft"`` (``edited·m + original·(1 − m)``, the default and what an
official-format state dict is assumed to expect) or ``"binary"`` (the mask binarised at 0.5,
the mask the Poisson target uses: edited inside, original outside, a hard seam). It is not
part of the state dict; facedit checkpoints record it in their ``config``.
:func:`shared.blend.suppressor.suppressor_inputs` builds the composite, the mask channel and
the residual's gate (the region where the composite may differ from a Poisson composite:
``m > 0`` for soft, ``m ≥ 0.5`` for binary; outside it the original is returned untouched).
:func:`zero_init_head` zeroes ``finalconv3`` so that an untrained network is exactly the
identity under this parametrisation.

Checkpoints read by :func:`load_maresunet`:

- an official-format plain state dict (the 370 keys above; the configuration is inferred
  from ``firstconv.weight`` and ``finalconv3.weight``), loaded strictly;
- a facedit checkpoint: a dict ``{"model": <state dict>, "config": {"num_classes": int,
  "base_width": int, "num_channels": int (optional, default 3), "composite": "soft" |
  "binary" (optional, default "soft")}, ...}``; any other
  top-level keys (step, optimiser state, metrics) are ignored. :func:`maresunet_checkpoint`
  writes this format.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from shared.models.checkpoints import read_checkpoint
from shared.models.resnet import resnet34

_STRIDE = 32
COMPOSITES = ("soft", "binary")


def _conv_relu(in_ch: int, out_ch: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=True),
        nn.ReLU(inplace=True),
    )


@contextlib.contextmanager
def _attention_precision(x: Tensor) -> Iterator[torch.dtype]:
    """Yield the dtype for an attention core: at least float32, with autocast switched off."""
    dtype = torch.promote_types(x.dtype, torch.float32)
    device_type = x.device.type
    if torch.amp.is_autocast_available(device_type):
        with torch.autocast(device_type=device_type, enabled=False):
            yield dtype
    else:
        yield dtype


class PAM_Module(nn.Module):  # noqa: N801 - official class name
    """Position attention with the first-order Taylor ("linear") kernel 1 + q̂ᵀk̂.

    o_n = Σ_j (1 + q̂_nᵀ k̂_j) v_j / Σ_j (1 + q̂_nᵀ k̂_j), q̂/k̂ L2-normalised over channels;
    y = x + γ·o with γ initialised to 0.
    """

    def __init__(self, in_places: int, scale: int = 8, eps: float = 1e-6) -> None:
        super().__init__()
        if in_places // scale < 1:
            raise ValueError(f"in_places must be >= scale ({scale}), got {in_places}")
        self.gamma = nn.Parameter(torch.zeros(1))
        self.eps = eps
        self.query_conv = nn.Conv2d(in_places, in_places // scale, kernel_size=1)
        self.key_conv = nn.Conv2d(in_places, in_places // scale, kernel_size=1)
        self.value_conv = nn.Conv2d(in_places, in_places, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        n = h * w
        q, k, v = self.query_conv(x), self.key_conv(x), self.value_conv(x)
        with _attention_precision(x) as dtype:
            q = F.normalize(q.flatten(2).to(dtype), dim=1)  # (B, C', N)
            k = F.normalize(k.flatten(2).to(dtype), dim=1)
            v = v.flatten(2).to(dtype)  # (B, C, N)
            kv = torch.einsum("bmn,bcn->bmc", k, v) / n
            numerator = v.mean(dim=-1, keepdim=True) + torch.einsum("bmn,bmc->bcn", q, kv)
            denominator = 1 + torch.einsum("bmn,bm->bn", q, k.mean(dim=-1) + self.eps / n)
            # Σ_j (1 + q̂ᵀk̂_j) ≥ 0 vanishes only when every k̂_j = −q̂ (likely with one query
            # channel in toy widths); the official code then divides 0 by ~0.
            denominator = denominator.clamp_min(self.eps)
            out = (numerator / denominator.unsqueeze(1)).to(x.dtype)
        return x + self.gamma * out.reshape(b, c, h, w)


class CAM_Module(nn.Module):  # noqa: N801 - official class name
    """DANet channel attention: A = softmax(max_row(E) − E), E = X Xᵀ; y = x + β·(A X)."""

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        with _attention_precision(x) as dtype:
            flat = x.flatten(2).to(dtype)  # (B, C, N)
            energy = torch.bmm(flat, flat.transpose(1, 2))
            energy = energy.amax(dim=-1, keepdim=True) - energy
            attention = energy.softmax(dim=-1)
            out = torch.bmm(attention, flat).to(x.dtype)
        return self.gamma * out.reshape(b, c, h, w) + x


class PAM_CAM_Layer(nn.Module):  # noqa: N801 - official class name
    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.conv1 = _conv_relu(in_ch, in_ch, 3)
        self.PAM = PAM_Module(in_ch)
        self.CAM = CAM_Module()
        self.conv2P = nn.Sequential(nn.Dropout2d(0.1), _conv_relu(in_ch, in_ch, 1))
        self.conv2C = nn.Sequential(nn.Dropout2d(0.1), _conv_relu(in_ch, in_ch, 1))
        self.conv3 = nn.Sequential(nn.Dropout2d(0.1), _conv_relu(in_ch, in_ch, 1))

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        x = self.conv2P(self.PAM(x)) + self.conv2C(self.CAM(x))
        return self.conv3(x)


class DecoderBlock(nn.Module):
    """LinkNet decoder: 1×1 (C→C/4), 3×3 transposed conv ×2 upsampling, 1×1 (C/4→out)."""

    def __init__(self, in_channels: int, n_filters: int) -> None:
        super().__init__()
        mid = in_channels // 4
        self.conv1 = nn.Conv2d(in_channels, mid, 1)
        self.norm1 = nn.BatchNorm2d(mid)
        self.deconv2 = nn.ConvTranspose2d(mid, mid, 3, stride=2, padding=1, output_padding=1)
        self.norm2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, n_filters, 1)
        self.norm3 = nn.BatchNorm2d(n_filters)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.norm1(self.conv1(x)), inplace=True)
        x = F.relu(self.norm2(self.deconv2(x)), inplace=True)
        return F.relu(self.norm3(self.conv3(x)), inplace=True)


class MAResUNet(nn.Module):
    """MAResU-Net; ``forward`` maps (B, num_channels, H, W) to raw (B, num_classes, H, W)."""

    def __init__(self, num_classes: int = 3, num_channels: int = 3, base_width: int = 64,
                 composite: str = "soft") -> None:
        super().__init__()
        if composite not in COMPOSITES:
            raise ValueError(f"composite must be one of {list(COMPOSITES)}, got {composite!r}")
        if num_classes < 1 or num_channels < 1:
            raise ValueError(
                f"num_classes and num_channels must be >= 1, got {num_classes}, {num_channels}"
            )
        if base_width < 8 or base_width % 8:
            raise ValueError(f"base_width must be a positive multiple of 8, got {base_width}")
        self.num_classes = num_classes
        self.num_channels = num_channels
        self.base_width = base_width
        self.composite = composite
        filters = [base_width, base_width * 2, base_width * 4, base_width * 8]
        head = base_width // 2

        resnet = resnet34(in_channels=num_channels, width=base_width)
        self.firstconv = resnet.conv1
        self.firstbn = resnet.bn1
        self.firstrelu = resnet.relu
        self.firstmaxpool = resnet.maxpool
        self.encoder1 = resnet.layer1
        self.encoder2 = resnet.layer2
        self.encoder3 = resnet.layer3
        self.encoder4 = resnet.layer4

        self.attention4 = PAM_CAM_Layer(filters[3])
        self.attention3 = PAM_CAM_Layer(filters[2])
        self.attention2 = PAM_CAM_Layer(filters[1])
        self.attention1 = PAM_CAM_Layer(filters[0])

        self.decoder4 = DecoderBlock(filters[3], filters[2])
        self.decoder3 = DecoderBlock(filters[2], filters[1])
        self.decoder2 = DecoderBlock(filters[1], filters[0])
        self.decoder1 = DecoderBlock(filters[0], filters[0])

        self.finaldeconv1 = nn.ConvTranspose2d(filters[0], head, 4, 2, 1)
        self.finalconv2 = nn.Conv2d(head, head, 3, padding=1)
        self.finalconv3 = nn.Conv2d(head, num_classes, 3, padding=1)

    @property
    def config(self) -> dict[str, int | str]:
        return {
            "num_classes": self.num_classes,
            "num_channels": self.num_channels,
            "base_width": self.base_width,
            "composite": self.composite,
        }

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.num_channels:
            raise ValueError(
                f"x must have shape (B, {self.num_channels}, H, W), got {tuple(x.shape)}"
            )
        h, w = x.shape[-2:]
        x = _pad_to_multiple(x, _STRIDE)

        x1 = self.firstmaxpool(self.firstrelu(self.firstbn(self.firstconv(x))))
        e1 = self.encoder1(x1)
        e2 = self.encoder2(e1)
        e3 = self.encoder3(e2)
        e4 = self.attention4(self.encoder4(e3))

        d4 = self.decoder4(e4) + self.attention3(e3)
        d3 = self.decoder3(d4) + self.attention2(e2)
        d2 = self.decoder2(d3) + self.attention1(e1)
        d1 = self.decoder1(d2)

        out = F.relu(self.finaldeconv1(d1), inplace=True)
        out = F.relu(self.finalconv2(out), inplace=True)
        out = self.finalconv3(out)
        return out[..., :h, :w]


def _pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def residual_refine(net: MAResUNet, x01: Tensor, mask: Tensor | None = None,
                    gate: Tensor | None = None) -> Tensor:
    """Suppress artifacts in a naive composite: (B, 3, H, W) in [0, 1] → clamped [0, 1].

    The network sees ``x = 2·x01 − 1`` and predicts a residual: ``out = x + net(x)``. A
    mask-conditioned network (``num_channels == num_classes + 1``) also sees the blend mask
    (B, 1, H, W) in [0, 1] as a last input channel, scaled the same way. ``gate``
    (B, 1, H, W), if given, limits the change to where ``gate > 0``: elsewhere the input comes
    back bit-exactly.
    """
    conditioned = net.num_channels == net.num_classes + 1
    if not conditioned and net.num_classes != net.num_channels:
        raise ValueError(
            "residual_refine needs num_classes == num_channels (or one more input channel for "
            f"the mask), got {net.num_classes} and {net.num_channels}"
        )
    if x01.ndim != 4 or x01.shape[1] != net.num_classes:
        raise ValueError(
            f"x01 must have shape (B, {net.num_classes}, H, W), got {tuple(x01.shape)}"
        )
    x = x01 * 2 - 1
    if conditioned:
        if mask is None:
            raise ValueError("mask: this MAResU-Net is mask-conditioned and needs the blend mask")
        if mask.shape != (x01.shape[0], 1, *x01.shape[-2:]):
            raise ValueError(
                f"mask must have shape {(x01.shape[0], 1, *x01.shape[-2:])}, "
                f"got {tuple(mask.shape)}"
            )
        residual = net(torch.cat([x, mask.to(x.dtype) * 2 - 1], dim=1))
    else:
        residual = net(x)
    refined = ((x + residual + 1) / 2).clamp(0, 1)
    return refined if gate is None else torch.where(gate > 0, refined, x01)


@torch.no_grad()
def zero_init_head(net: MAResUNet) -> MAResUNet:
    """Zero ``finalconv3`` so that ``x + net(x) == x``: an untrained suppressor is the identity."""
    nn.init.zeros_(net.finalconv3.weight)
    nn.init.zeros_(net.finalconv3.bias)
    return net


def maresunet_checkpoint(net: MAResUNet, **extra: Any) -> dict[str, Any]:
    """A facedit checkpoint dict (``model``, ``config``, plus ``extra`` keys) for ``torch.save``."""
    return {"model": net.state_dict(), "config": net.config, **extra}


def load_maresunet(
    path_or_state_dict: str | os.PathLike[str] | Mapping[str, Any],
    device: str | torch.device = "cpu",
) -> MAResUNet:
    """Build a MAResU-Net from an official state dict or a facedit checkpoint (see module doc).

    The network is returned in eval mode on ``device``. Raises ``ValueError`` for files
    that are not MAResU-Net weights or whose keys/shapes do not match strictly.
    """
    obj = read_checkpoint(path_or_state_dict, "path_or_state_dict")
    if "model" in obj:
        state, config = obj["model"], obj.get("config")
        if not isinstance(state, Mapping) or not isinstance(config, Mapping):
            raise ValueError("a facedit checkpoint needs a 'model' state dict and a 'config' dict")
        try:
            kwargs = {
                "num_classes": int(config["num_classes"]),
                "base_width": int(config["base_width"]),
                "num_channels": int(config.get("num_channels", 3)),
                "composite": str(config.get("composite", "soft")),
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"checkpoint config must hold integer num_classes and base_width: {exc}"
            ) from exc
    else:
        state = obj
        first, last = state.get("firstconv.weight"), state.get("finalconv3.weight")
        if not isinstance(first, Tensor) or not isinstance(last, Tensor):
            keys = list(state)[:5]
            raise ValueError(
                "path_or_state_dict is not a MAResU-Net state dict (no firstconv.weight / "
                f"finalconv3.weight); first keys: {keys}"
            )
        kwargs = {
            "num_classes": int(last.shape[0]),
            "base_width": int(first.shape[0]),
            "num_channels": int(first.shape[1]),
        }
    with torch.device("meta"):
        net = MAResUNet(**kwargs)
    # Every tensor is overwritten by the strict load, so skip the random initialisation.
    net = net.to_empty(device=device)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"MAResU-Net weights do not match {kwargs}: {exc}") from exc
    return net.eval()


__all__ = [
    "CAM_Module",
    "DecoderBlock",
    "MAResUNet",
    "PAM_CAM_Layer",
    "PAM_Module",
    "load_maresunet",
    "maresunet_checkpoint",
    "residual_refine",
    "zero_init_head",
]
