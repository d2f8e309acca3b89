"""The staged edit pipeline: tensors in, tensors out.

    original ─► invert ─► edit ─► generate ─► differential activation ─► refine mask
                                                          │
    result ◄─ keep outside ◄─ suppress ◄─ naive blend ◄───┘

Each stage is a plain function over a batch ``(B, …)``; :class:`EditPipeline` is the short
sequence of stage calls that the CLI, the embedded runner and the Celery workers share.
Every stage is deterministic (the generator uses its stored noise buffers), and no stage
mixes batch items, so a batch of B images gives the same results as B single runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from shared.core.contracts import AUTO_SUPPRESSOR, NETWORK_SUPPRESSORS, PipelineConfig
from shared.core.edits import EditSpec
from shared.core.errors import ModelUnavailable

if TYPE_CHECKING:
    from shared.editing.bundle import ModelBundle

STAGES = ("invert", "edit", "generate", "mask", "blend", "suppress")


@dataclass
class PipelineOutput:
    """One item per (image, variant): ``source[i]`` is the input image of item ``i``."""

    result: torch.Tensor  # (N,3,S,S) in [0,1]
    mask: torch.Tensor  # (N,1,S,S) in [0,1]
    edited: torch.Tensor  # generated edited image at output size
    naive: torch.Tensor  # naive composite
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    latents: torch.Tensor | None = None  # (B, L, D): each input image's W+ code
    source: list[int] = field(default_factory=list)
    suppressor: str = ""  # the suppressor that ran ("auto" resolved)

    def intermediates(self) -> dict[str, torch.Tensor]:
        return {"mask": self.mask, "edited": self.edited, "naive": self.naive, **self.extras}


# ---------------------------------------------------------------- stages


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Square resize: area when shrinking, bicubic (clamped) when enlarging."""
    if images.shape[-2:] == (size, size):
        return images
    if images.shape[-1] > size:
        return F.interpolate(images, size=(size, size), mode="area")
    out = F.interpolate(images, size=(size, size), mode="bicubic", align_corners=False)
    return out.clamp(0.0, 1.0) if images.min() >= 0 else out


def invert(encoder: torch.nn.Module, images01: torch.Tensor, encoder_size: int) -> torch.Tensor:
    """Images in [0,1] → W+ (B, L, D), the encoder's ``latent_avg`` included."""
    x = resize(images01, encoder_size) * 2.0 - 1.0
    return encoder(x)


def edit_latents(
    w: torch.Tensor, edits: Sequence[Sequence[EditSpec]], direction_for: Callable[[str], Any]
) -> torch.Tensor:
    """Apply each item's edits (w + Σ αᵢ·dᵢ on their layer ranges).

    ``direction_for(attribute)`` returns ``(direction, default_layers)``; an edit's own layer
    range wins over the direction's default.
    """
    from shared.models.directions import apply_edit

    if len(edits) != w.shape[0]:
        raise ValueError(f"edits: {len(edits)} edit lists for a batch of {w.shape[0]}")
    rows = []
    for i, item_edits in enumerate(edits):
        row = w[i : i + 1]
        for spec in item_edits:
            direction, default_layers = direction_for(spec.attribute)
            span = spec.layers or default_layers
            layers = slice(*span) if span else None
            row = apply_edit(row, direction, spec.strength, layers=layers)
        rows.append(row)
    return torch.cat(rows, dim=0)


def render(
    generator: torch.nn.Module, w: torch.Tensor, max_resolution: int | None = None
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """G(w) with the fixed noise: images in [0,1] and the generator's features (only up to
    ``max_resolution`` when given: the image is then at that resolution)."""
    image, _, features = generator(
        [w], input_is_latent=True, randomize_noise=False, return_features=True,
        max_resolution=max_resolution,
    )
    features = {r: f.float() for r, f in features.items()}  # bf16 under autocast
    return ((image.float() + 1.0) / 2.0).clamp(0.0, 1.0), features


def generate(
    generator: torch.nn.Module, w: torch.Tensor, w_edit: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """Render G(w) and G(w') in one pass with the fixed noise; images in [0,1] plus features."""
    batch = w.shape[0]
    image, features = render(generator, torch.cat([w, w_edit], dim=0))
    feats_orig = {r: f[:batch] for r, f in features.items()}
    feats_edit = {r: f[batch:] for r, f in features.items()}
    return image[:batch], image[batch:], feats_orig, feats_edit


def activation_mask(
    kind: str,
    *,
    size: int,
    feats_orig: dict[int, torch.Tensor] | None = None,
    feats_edit: dict[int, torch.Tensor] | None = None,
    generated: torch.Tensor | None = None,
    edited: torch.Tensor | None = None,
    diffcam: torch.nn.Module | None = None,
    target_classes: Sequence[int] | None = None,
) -> torch.Tensor:
    """Soft mask (B,1,size,size) in [0,1] of where the edit changed the face."""
    if kind == "feature_diff":
        from shared.models.feature_diff import feature_difference_mask

        return feature_difference_mask(feats_orig, feats_edit, size).float()
    if kind == "diffcam":
        if diffcam is None:
            raise ModelUnavailable(
                "activation=diffcam needs diff_cam_weight.pt (see `facedit weights list`)"
            )
        pair = torch.cat([resize(generated, size), resize(edited, size)], dim=1) * 2.0 - 1.0
        cam = diffcam.cam(pair, list(target_classes))
        return cam.unsqueeze(1).float()
    raise ValueError(f"kind: unknown differential activation {kind!r}")


def refine_mask(
    mask: torch.Tensor, size: int, threshold: float = 0.0, dilate: int = 0, feather: float = 0.0
) -> torch.Tensor:
    """Upsample to the output size, then threshold, dilate and feather (in that order)."""
    out = F.interpolate(mask, size=(size, size), mode="bilinear", align_corners=False)
    out = out.clamp(0.0, 1.0)
    if threshold > 0:
        out = torch.where(out >= threshold, out, torch.zeros_like(out))
    if dilate > 0:
        out = F.max_pool2d(out, kernel_size=2 * dilate + 1, stride=1, padding=dilate)
    if feather > 0:
        out = gaussian_blur(out, feather)
    return out.clamp(0.0, 1.0)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(round(3 * sigma)))
    coords = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    horizontal = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    vertical = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    x = F.pad(x, (radius, radius, 0, 0), mode="replicate")
    x = F.conv2d(x, horizontal, groups=channels)
    x = F.pad(x, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(x, vertical, groups=channels)


def keep_outside(
    result: torch.Tensor, original: torch.Tensor, mask: torch.Tensor, margin: float
) -> torch.Tensor:
    """Copy the original back wherever the mask (grown by ``margin``·side) is zero.

    A learned suppressor may touch every pixel; this makes pixels far from the edit
    bit-identical to the input. The transition is a soft ramp inside the margin.
    """
    side = result.shape[-1]
    radius = max(1, int(round(margin * side)))
    region = (mask > 1e-3).to(result.dtype)
    region = F.max_pool2d(region, kernel_size=2 * radius + 1, stride=1, padding=radius)
    soft = (gaussian_blur(region, radius / 3.0) * region).clamp(0.0, 1.0)  # 0 outside it
    return result * soft + original * (1.0 - soft)


# ---------------------------------------------------------------- pipeline


# FACEDIT_PRECISION: the dtype the networks run in (None: float32 as stored).
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}


class EditPipeline:
    """The sequence of stage calls, with the models of one :class:`ModelBundle`.

    ``max_items`` bounds how many (image, variant) items go through the generator and the
    blending stages at once; inversion and the reconstruction G(w) run once per image.
    ``precision`` "bf16" runs the networks (encoder, generator, Diff-CAM, MAResU-Net) under
    bfloat16 autocast on the bundle's device; the Poisson solvers, masks and compositing stay
    float32 (FACEDIT_PRECISION; tests/unit/editing/test_pipeline.py states the tolerance).
    """

    def __init__(
        self, bundle: ModelBundle, config: PipelineConfig | None = None,
        max_items: int | None = None, precision: str = "fp32",
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        self.bundle = bundle
        self.config = config or PipelineConfig()
        self.max_items = max_items
        self.precision = precision
        self._suppressors: dict[str, Any] = {}

    def with_config(self, config: PipelineConfig) -> EditPipeline:
        other = EditPipeline(self.bundle, config, self.max_items, self.precision)
        other._suppressors = self._suppressors
        return other

    def _networks(self) -> Any:
        """The context the networks run in: bf16 autocast, or nothing for fp32."""
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.bundle.device.type, dtype=dtype)

    @property
    def output_size(self) -> int:
        return int(self.config.output_size or self.bundle.output_size)

    @property
    def suppressor_name(self) -> str:
        """The suppressor this configuration runs: ``auto`` resolved for this bundle."""
        name = self.config.suppressor
        return self.bundle.auto_suppressor() if name == AUTO_SUPPRESSOR else name

    def suppressor(self, name: str):
        if name not in self._suppressors:
            from shared.blend import build_suppressor

            network = self.bundle.suppressor_network(name)
            if name in NETWORK_SUPPRESSORS and network is None:
                raise ModelUnavailable(
                    f"suppressor={name} needs {NETWORK_SUPPRESSORS[name]} in the weights folder"
                    f"{_how_to_get(name)} (see `facedit weights list`); suppressor=auto uses it "
                    "when it is installed and exact Poisson blending otherwise"
                )
            self._suppressors[name] = build_suppressor(name, network=network)
        return self._suppressors[name]

    def __call__(
        self,
        images: torch.Tensor,
        edits: Sequence[Sequence[EditSpec]],
        on_stage: Callable[[str], None] | None = None,
    ) -> PipelineOutput:
        """images: (B,3,H,W) in [0,1] (any square size); one fixed edit list per image."""
        return self.run(images, [[list(item)] for item in edits], on_stage=on_stage)

    @torch.inference_mode()
    def run(
        self,
        images: torch.Tensor,
        variants: Sequence[Sequence[Sequence[EditSpec]]],
        *,
        latents: Sequence[torch.Tensor | None] | None = None,
        on_stage: Callable[[str], None] | None = None,
    ) -> PipelineOutput:
        """Edit each image with each of its variants (fixed edit lists).

        images: (B,3,H,W) in [0,1]; ``variants[i]``: the edit lists of image ``i`` (several
        for a strength sweep); ``latents[i]``: a stored W+ code (L, D) for image ``i`` that
        replaces its inversion, or None. Each image is inverted and reconstructed once,
        whatever the number of its variants; the items come out image by image.
        """
        bundle = self.bundle
        notify = on_stage or (lambda stage: None)
        if len(variants) != images.shape[0]:
            raise ValueError(f"variants: {len(variants)} lists for a batch of {images.shape[0]}")
        source = [i for i, item in enumerate(variants) for _ in item]
        flat = [list(edit_list) for item in variants for edit_list in item]
        if not flat or any(not item for item in variants):
            raise ValueError("variants: every image needs at least one edit list")
        suppressor_name = self.suppressor_name
        suppress = self.suppressor(suppressor_name)
        device = bundle.device
        size = self.output_size
        original = resize(images.to(device=device, dtype=torch.float32), size)

        w = self._latents(original, latents)
        notify("invert")
        reconstruction: dict[str, Any] = {}  # G(w) and its features, rendered once
        chunk = self.max_items or len(flat)
        parts: list[dict[str, torch.Tensor]] = []
        for begin in range(0, len(flat), chunk):
            index = source[begin : begin + chunk]
            parts.append(self._edit_items(
                w, original, reconstruction, index, flat[begin : begin + chunk],
                suppress, suppressor_name, notify,
            ))  # fmt: skip
        out = {key: torch.cat([p[key] for p in parts]) for key in parts[0]}
        extras = {"poisson": out["poisson"]} if "poisson" in out else {}
        return PipelineOutput(out["result"], out["mask"], out["edited"], out["naive"], extras,
                              latents=w.float().cpu(), source=source, suppressor=suppressor_name)

    def _latents(
        self, original: torch.Tensor, latents: Sequence[torch.Tensor | None] | None
    ) -> torch.Tensor:
        """W+ codes of the batch: stored ones where given, the encoder's elsewhere."""
        bundle = self.bundle
        given = list(latents) if latents is not None else [None] * original.shape[0]
        if len(given) != original.shape[0]:
            raise ValueError(f"latents: {len(given)} entries for a batch of {original.shape[0]}")
        missing = [i for i, code in enumerate(given) if code is None]
        codes: list[torch.Tensor | None] = [None] * len(given)
        if missing:
            with self._networks():
                inverted = invert(bundle.encoder, original[missing], bundle.encoder_size)
            inverted = inverted.float()
            for row, i in enumerate(missing):
                codes[i] = inverted[row]
        for i, code in enumerate(given):
            if code is not None:
                codes[i] = code.to(device=bundle.device, dtype=torch.float32)
        return torch.stack(codes)

    def _edit_items(
        self, w, original, reconstruction, index, edits, suppress, suppressor_name, notify
    ) -> dict[str, torch.Tensor]:
        """The edit → generate → mask → blend → suppress stages for some items."""
        cfg, bundle, size = self.config, self.bundle, self.output_size
        w_edit = edit_latents(w[index], edits, bundle.direction)
        notify("edit")
        if not reconstruction:  # first chunk: G(w) of every image, counted as "generate"
            with self._networks():
                reconstruction["image"], reconstruction["features"] = render(
                    bundle.generator, w, _reconstruction_resolution(cfg.activation)
                )
        generated, feats_orig = reconstruction["image"], reconstruction["features"]
        with self._networks():
            edited_native, feats_edit = render(bundle.generator, w_edit)
        edited = resize(edited_native, size)
        notify("generate")
        target_classes = None
        if cfg.activation == "diffcam":
            target_classes = [bundle.diffcam_class(item[0].attribute) for item in edits]
        with self._networks():
            mask = activation_mask(
                cfg.activation,
                size=bundle.encoder_size,
                feats_orig={r: f[index] for r, f in feats_orig.items()},
                feats_edit=feats_edit,
                generated=generated[index],
                edited=edited_native,
                diffcam=bundle.diffcam,
                target_classes=target_classes,
            ).float()
        mask = refine_mask(mask, size, cfg.mask_threshold, cfg.mask_dilate, cfg.mask_feather)
        notify("mask")
        from shared.blend import naive_blend

        base = original[index]
        naive = naive_blend(base, edited, mask)
        notify("blend")
        # a network suppressor under the networks' precision; Poisson always in float32
        with self._networks() if suppressor_name in NETWORK_SUPPRESSORS else nullcontext():
            result = suppress(base, edited, mask).float()
        if cfg.keep_outside:
            result = keep_outside(result, base, mask, cfg.keep_outside_margin)
        out = {"result": result.clamp(0, 1), "mask": mask, "edited": edited, "naive": naive}
        if cfg.intermediates:
            if suppressor_name.startswith("poisson"):
                out["poisson"] = result
            else:
                out["poisson"] = self.suppressor("poisson")(base, edited, mask)
        notify("suppress")
        return out


def _reconstruction_resolution(activation: str) -> int | None:
    """How far G(w) must be rendered: the feature-difference mask reads its features up to
    256² only (the same values a full render has there); Diff-CAM needs the whole image."""
    if activation == "feature_diff":
        from shared.models.feature_diff import DEFAULT_RESOLUTION_RANGE

        return DEFAULT_RESOLUTION_RANGE[1]
    return None


def _how_to_get(name: str) -> str:
    if name == "maresunet":
        return (": no trained MAResU-Net is published, so train one with `facedit train "
                "suppressor` and bring it with `facedit weights import`")
    return ""
