"""Train the MAResU-Net suppressor: naive composite → Poisson composite.

The network is used exactly as the pipeline uses it (:func:`~shared.models.maresunet.
suppressor_inputs` and :func:`~shared.models.maresunet.residual_refine`: it predicts a residual
on the naive composite, gated to the mask; the head starts at zero, so training starts from
the identity).

The input composite (``composite``, recorded in the checkpoint so that the suppressor feeds
the same at inference):

- ``binary`` (default): edited where the mask is ≥ 0.5, original elsewhere — the mask the
  Poisson target itself uses. The target then differs from the input only inside that mask,
  by a smooth (harmonic) correction fixed by the jump along the seam: a function of the input.
- ``soft``: the pairs' ``naive`` file, ``edited·m + original·(1 − m)``. Where 0 < m < 1 it
  mixes the two images' textures (ghosting), and the target wants the edited texture alone;
  no function of the composite recovers it exactly, so a network can only learn priors.

``mask_input`` adds the (binarised, for ``binary``) mask as a fourth input channel — facedit's
variant; the paper's network sees the three composite channels only.

Loss: a band-weighted Charbonnier term ``sqrt(d² + ε²) − ε`` (ε = 0.01) plus ``1 − SSIM``
(Gaussian 11×11, σ 1.5, computed differentiably below). The data term weighs every pixel of
the edit mask dilated by 4 px ``1 + band_weight`` (10) and every other pixel 1, normalised by
the mean weight. BatchNorm statistics are computed once, exactly, over the training images on
the freshly initialised network (:func:`calibrate_batch_norm`) and then frozen
(:func:`frozen_bn_train_mode`: BN layers in eval mode, their affine parameters still learnt).

Why (the first CPU run, plain ``L1 + (1 − SSIM)`` with BN in train mode, stayed at the
identity for 5000 steps; bench/RESULTS.md):

- BatchNorm with batches of 8 at 64² (the deepest maps are 2×2, 32 values per channel) made
  the learnt correction depend on the batch statistics: in a 1000-step probe, on the training
  pairs the network in train mode beat the identity (MSE 3.8e-4 vs 5.4e-4) while the same
  weights in eval mode, as validation and inference run it, were worse (8.6e-4), and exact
  re-estimated statistics ("precise BN") did not recover it. Frozen statistics make training
  compute the function that is evaluated.
- ~90 % of the pixels have naive == Poisson. Plain L1 pushes every small output there back
  with a constant-size gradient, and the cheapest way to output exactly zero is to silence the
  ReLUs in front of the head (``finalconv2``: 50 % active at initialisation, 3–4 % after 600
  steps, an absorbing state). Charbonnier is quadratic for errors below ε (about 2.5 grey
  levels), and the band weight gives the region that needs correcting comparable weight.

With both changes a 64² CPU run fits its training pairs (28 % lower MSE to Poisson than the
naive composite, eval mode) but does not yet generalise to held-out faces (bench/RESULTS.md).

AdamW (weight decay 1e-4), a linear warm-up over the first 5 % of the steps (at most 100),
then a cosine schedule from ``lr`` to ``lr/100``. The default ``lr`` is 1e-4: the head starts
at zero (training starts from the identity), and at 3e-4 or more the pre-head ReLUs die within
a few hundred steps even with the loss above. Mixed precision
(bf16 where supported, else fp16 with a gradient scaler) on CUDA only.
Validation also logs ``val_input_dependence``: how much the network's residual changes when
each validation mask is applied to another image of the batch, relative to the residual
(0: the residual depends on the mask alone — what the CPU runs in bench/RESULTS.md learnt).
Augmentation: random horizontal flips, and with ``colour_jitter`` j > 0 a random channel order
and a per-channel gain exp(U(−j, j)) and offset U(−j/2, j/2) applied alike to the input and the
target. Poisson's equation is linear, so blending the transformed images gives the transformed
target (up to clamping at 0 and 1): these are label-preserving, and they vary the colour and
lighting that 150 training faces do not. All draws are deterministic from the seed. Batches
are drawn with a dedicated seeded generator; the checkpoint stores it together with the
optimiser, scheduler, scaler and the torch / numpy / python RNG states, so a resumed CPU run is
bit-identical to an uninterrupted one. The validation split is by source image (seeded), so no
face is in both.
"""

from __future__ import annotations

import csv
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

CHECKPOINT_FORMAT = "facedit-suppressor-v1"
COMPOSITES = ("binary", "soft")
LOG_COLUMNS = ("step", "train_loss", "val_l1", "val_psnr", "val_ssim", "val_input_dependence",
               "lr", "seconds")


@dataclass
class TrainConfig:
    pairs: str
    out: str
    size: int = 256
    steps: int = 1000
    batch: int = 4
    lr: float = 1e-4
    weight_decay: float = 1e-4
    device: str = "auto"
    val_fraction: float = 0.1
    base_width: int = 64
    seed: int = 0
    val_every: int = 50
    save_every: int = 100
    ssim_weight: float = 1.0
    band_weight: float = 10.0
    charbonnier_eps: float = 0.01
    mask_input: bool = False
    composite: str = "binary"
    colour_jitter: float = 0.0

    def validate(self) -> None:
        if not 32 <= self.size <= 2048 or self.size % 32:
            raise ValueError(f"size: must be a multiple of 32 in [32, 2048], got {self.size}")
        if self.steps < 1 or self.batch < 1:
            raise ValueError(f"steps and batch: must be ≥ 1, got {self.steps}, {self.batch}")
        if not self.lr > 0:
            raise ValueError(f"lr: must be > 0, got {self.lr}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction: must be in [0, 1), got {self.val_fraction}")
        if self.val_every < 1 or self.save_every < 1:
            raise ValueError("val_every and save_every: must be ≥ 1")
        if self.composite not in COMPOSITES:
            raise ValueError(f"composite: {self.composite!r} is not one of {list(COMPOSITES)}")
        if not 0 <= self.colour_jitter <= 1:
            raise ValueError(f"colour_jitter: must be in [0, 1], got {self.colour_jitter}")
        if self.band_weight < 0 or self.charbonnier_eps < 0:
            raise ValueError("band_weight and charbonnier_eps: must be ≥ 0, got "
                             f"{self.band_weight}, {self.charbonnier_eps}")


# --------------------------------------------------------------- augmentation


def colour_jittered(
    x: Tensor, y: Tensor, strength: float, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """The same random channel order, per-channel gain exp(U(−s, s)) and offset U(−s/2, s/2)
    applied to input and target (B, C, H, W), clamped to [0, 1]; draws on the CPU
    ``generator``."""
    batch, channels = x.shape[:2]
    order = torch.argsort(torch.rand(batch, channels, generator=generator), dim=1)
    gain = torch.exp((torch.rand(batch, channels, 1, 1, generator=generator) * 2 - 1) * strength)
    offset = (torch.rand(batch, channels, 1, 1, generator=generator) - 0.5) * strength
    index = order.to(x.device).view(batch, channels, 1, 1).expand_as(x)
    gain, offset = gain.to(x.device), offset.to(x.device)
    return tuple(  # type: ignore[return-value]
        (t.gather(1, index) * gain + offset).clamp_(0, 1) for t in (x, y)
    )


# --------------------------------------------------------------- loss


def ssim_differentiable(x: Tensor, y: Tensor) -> Tensor:
    """Mean SSIM over the batch (:func:`shared.metrics.ssim`'s window and constants, as
    depthwise convolutions so that it is differentiable and runs on any device)."""
    from shared.metrics.ssim import K1, K2, SIGMA, WINDOW_SIZE, gaussian_taps

    channels = x.shape[1]
    taps = torch.tensor(gaussian_taps(WINDOW_SIZE, SIGMA), dtype=x.dtype, device=x.device)
    horizontal = taps.view(1, 1, 1, -1).repeat(5 * channels, 1, 1, 1)
    vertical = taps.view(1, 1, -1, 1).repeat(5 * channels, 1, 1, 1)
    maps = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    moments = F.conv2d(F.conv2d(maps, horizontal, groups=5 * channels), vertical,
                       groups=5 * channels)
    mu_x, mu_y, mu_xx, mu_yy, mu_xy = moments.split(channels, dim=1)
    var_x, var_y = mu_xx - mu_x * mu_x, mu_yy - mu_y * mu_y
    cov = mu_xy - mu_x * mu_y
    c1, c2 = K1**2, K2**2
    value = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))
    return value.mean()


def suppressor_loss(output: Tensor, target: Tensor, ssim_weight: float = 1.0,
                    weight: Tensor | None = None, eps: float = 0.0) -> Tensor:
    """``weighted Charbonnier + ssim_weight · (1 − SSIM)``; ``eps = 0``, no weight: plain L1.

    ``weight`` (B, 1, H, W) ≥ 0 scales each pixel's error; the sum is normalised by the mean
    weight, so the term stays on the L1 scale whatever the weights.
    """
    output, target = output.float(), target.float()
    diff = output - target
    error = diff.abs() if eps == 0 else (diff * diff + eps * eps).sqrt() - eps
    if weight is None:
        data = error.mean()
    else:
        weight = weight.float().expand_as(error)
        data = (error * weight).mean() / weight.mean().clamp_min(1e-12)
    return data + ssim_weight * (1 - ssim_differentiable(output, target))


def band_weights(masks: Tensor, band_weight: float, radius: int = 4) -> Tensor:
    """``1 + band_weight`` on the mask dilated by ``radius`` pixels, 1 elsewhere (uint8 masks)."""
    region = F.max_pool2d(masks.float(), 2 * radius + 1, stride=1, padding=radius) > 0
    return 1 + band_weight * region.float()


# --------------------------------------------------------------- data


def split_by_source(rows: list[dict[str, Any]], val_fraction: float, seed: int
                    ) -> tuple[list[int], list[int]]:
    """(train, val) row indices; every pair of a source image lands on the same side."""
    sources = sorted({row["source"] for row in rows})
    random.Random(seed).shuffle(sources)
    n_val = 0
    if val_fraction > 0 and len(sources) >= 2:
        n_val = min(len(sources) - 1, max(1, round(val_fraction * len(sources))))
    val_sources = set(sources[:n_val])
    train = [i for i, row in enumerate(rows) if row["source"] not in val_sources]
    val = [i for i, row in enumerate(rows) if row["source"] in val_sources]
    return train, val


def load_pair_images(pairs_dir: Path, rows: list[dict[str, Any]], size: int,
                     kind: str) -> Tensor:
    """One kind of pair image (``naive``, ``poisson``, ``original``, ``edited``) as uint8
    tensors (N, 3, size, size)."""
    from shared.train.pairs import read_png

    images = []
    for row in rows:
        image = torch.from_numpy(read_png(Path(pairs_dir) / row[kind])).permute(2, 0, 1)[None]
        if image.shape[-1] != size:
            image = F.interpolate(image, size=(size, size), mode="area"
                                  if image.shape[-1] > size else "bilinear")
        images.append((image.clamp(0, 1) * 255).round().to(torch.uint8))
    return torch.cat(images)


def binary_composites(pairs_dir: Path, rows: list[dict[str, Any]], size: int,
                      masks: Tensor) -> Tensor:
    """``edited`` where the mask is ≥ 0.5, else ``original`` (uint8, N×3×size×size): the
    composite with the Poisson target's own binarised mask."""
    from shared.blend.naive import binary_composite

    original = load_pair_images(pairs_dir, rows, size, "original")
    edited = load_pair_images(pairs_dir, rows, size, "edited")
    return binary_composite(original, edited, masks)


def load_pair_masks(pairs_dir: Path, rows: list[dict[str, Any]], size: int) -> Tensor:
    """The pairs' soft masks as uint8 tensors (N, 1, size, size)."""
    from shared.train.pairs import read_png

    masks = []
    for row in rows:
        mask = torch.from_numpy(read_png(Path(pairs_dir) / row["mask"]))
        mask = (mask if mask.ndim == 2 else mask[..., 0])[None, None].float()
        if mask.shape[-1] != size:
            mask = F.interpolate(mask, size=(size, size), mode="area"
                                 if mask.shape[-1] > size else "bilinear")
        masks.append((mask.clamp(0, 1) * 255).round().to(torch.uint8))
    return torch.cat(masks)


def _as_float(images: Tensor, device: torch.device) -> Tensor:
    return images.to(device).float() / 255.0


# --------------------------------------------------------------- checkpoints


def _rng_states(sampler: torch.Generator) -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "sampler": sampler.get_state(),
        "numpy": [kind, [int(k) for k in keys], int(pos), int(has_gauss), float(gauss)],
        "python": [version, list(internal), gauss_next],
    }


def _restore_rng_states(states: dict[str, Any], sampler: torch.Generator) -> None:
    torch.set_rng_state(states["torch"])
    sampler.set_state(states["sampler"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))


def _save(path: Path, checkpoint: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".part")
    torch.save(checkpoint, tmp)
    tmp.replace(path)


def log_path(out: Path) -> Path:
    return Path(out).with_suffix(".log.csv")


def plot_path(out: Path) -> Path:
    return Path(out).with_suffix(".curves.png")


# --------------------------------------------------------------- training


def _batch_norms(net: torch.nn.Module) -> list[torch.nn.modules.batchnorm._BatchNorm]:
    return [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def calibrate_batch_norm(net: torch.nn.Module, images: Tensor, batch: int,
                         device: torch.device, masks: Tensor | None = None) -> None:
    """Set every BatchNorm's running statistics to the exact averages over ``images`` (uint8).

    ``masks`` (uint8, N×1×H×W): the extra input channel of a mask-conditioned network.

    Run once on the freshly initialised network; :func:`frozen_bn_train_mode` then keeps them.
    """
    for module in _batch_norms(net):
        module.reset_running_stats()
        module.momentum = None  # cumulative average over the calibration batches
    net.train()
    for start in range(0, len(images), batch):
        x = _as_float(images[start : start + batch], device)
        if masks is not None:
            x = torch.cat([x, _as_float(masks[start : start + batch], device)], dim=1)
        net(x * 2 - 1)
    for module in _batch_norms(net):
        module.momentum = 0.1
    net.eval()


def frozen_bn_train_mode(net: torch.nn.Module) -> None:
    """Training mode with every BatchNorm in eval mode (fixed statistics, affine still learnt)."""
    net.train()
    for module in _batch_norms(net):
        module.eval()


def warmup_steps(steps: int) -> int:
    """Linear warm-up length: 5 % of the run, at most 100 steps."""
    return max(1, min(100, steps // 20))


@dataclass
class TrainResult:
    step: int
    seconds: float
    metrics: dict[str, float]
    checkpoint: Path
    log: Path
    plot: Path


def train_suppressor(
    config: TrainConfig,
    *,
    resume: bool = False,
    stop_at: int | None = None,
    progress: bool = True,
    on_log: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train (or resume) and write the checkpoint, CSV log and curve plot next to ``out``.

    ``stop_at``: stop after this step (a deliberate interruption; continue with ``resume``).
    """
    from shared.editing.bundle import resolve_device
    from shared.models.maresunet import (
        MAResUNet,
        maresunet_checkpoint,
        residual_refine,
        zero_init_head,
    )
    from shared.train.pairs import read_manifest

    config.validate()
    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    rows = read_manifest(Path(config.pairs))
    train_idx, val_idx = split_by_source(rows, config.val_fraction, config.seed)
    if not train_idx:
        raise ValueError("pairs: no training pairs left after the validation split")
    masks = load_pair_masks(Path(config.pairs), rows, config.size)
    target = load_pair_images(Path(config.pairs), rows, config.size, "poisson")
    if config.composite == "binary":
        naive = binary_composites(Path(config.pairs), rows, config.size, masks)
        masks = (masks >= 128).to(torch.uint8) * 255  # the mask the network is given
    else:
        naive = load_pair_images(Path(config.pairs), rows, config.size, "naive")
    weights = band_weights(masks, config.band_weight)

    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    random.seed(config.seed)
    sampler = torch.Generator().manual_seed(config.seed)
    net = zero_init_head(MAResUNet(num_classes=3, num_channels=4 if config.mask_input else 3,
                                   base_width=config.base_width,
                                   composite=config.composite)).to(device)
    train_tensor = torch.tensor(train_idx)
    calibrate_batch_norm(net, naive[train_tensor], config.batch, device,
                         masks[train_tensor] if config.mask_input else None)

    def refine(x: Tensor, m: Tensor) -> Tensor:
        # masks are already binarised for the binary composite; the gate as suppressor_inputs
        gate = m if config.composite == "binary" else (m > 0).to(m.dtype)
        return residual_refine(net, x, m if config.mask_input else None, gate)

    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    warmup = warmup_steps(config.steps)
    scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, [
        torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=warmup),
        torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(1, config.steps - warmup), eta_min=config.lr / 100),
    ], milestones=[warmup])
    amp_dtype = None
    if device.type == "cuda":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    step, elapsed, history = 0, 0.0, []
    if resume and out.is_file():
        state = torch.load(out, map_location="cpu", weights_only=True)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"resume: {out} is not a {CHECKPOINT_FORMAT} checkpoint")
        saved = state["config"]["train"]
        # checkpoints written before these options existed
        defaults = {"mask_input": False, "composite": "soft", "colour_jitter": 0.0}
        for key in ("steps", "batch", "size", "base_width", "seed", "val_fraction", "pairs",
                    "mask_input", "composite", "colour_jitter"):
            if saved.get(key, defaults.get(key)) != asdict(config)[key]:
                raise ValueError(f"resume: --{key.replace('_', '-')} {asdict(config)[key]} "
                                 f"differs from the checkpoint's {saved.get(key)}")
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        _restore_rng_states(state["rng"], sampler)
        step, elapsed = int(state["step"]), float(state["seconds"])
        history = _read_log(log_path(out), step)

    def checkpoint(metrics: dict[str, float]) -> dict[str, Any]:
        return maresunet_checkpoint(
            net, optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
            scaler=scaler.state_dict(), step=step, seconds=elapsed, rng=_rng_states(sampler),
            config={**net.config, "train": asdict(config)}, metrics=metrics,
            format=CHECKPOINT_FORMAT,
        )

    def validate() -> dict[str, float]:
        if not val_idx:
            return {}
        from shared.metrics import psnr, ssim

        net.eval()
        l1, p, s = [], [], []
        changed, moved = 0.0, 0.0
        with torch.no_grad():
            for start in range(0, len(val_idx), config.batch):
                idx = torch.tensor(val_idx[start : start + config.batch])
                x, y = _as_float(naive[idx], device), _as_float(target[idx], device)
                m = _as_float(masks[idx], device)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    output = refine(x, m).float()
                    # the same masks over the batch's other images: does the residual follow
                    # the image, or is it a function of the mask alone?
                    swapped = (refine(x.roll(1, 0), m).float() - x.roll(1, 0)) if len(idx) > 1 \
                        else None
                l1.append((output - y).abs().mean(dim=(1, 2, 3)).cpu())
                p.append(psnr(output, y).cpu())
                s.append(ssim(output, y).cpu())
                if swapped is not None:
                    changed += float((output - x - swapped).abs().sum())
                    moved += float((output - x).abs().sum())
        frozen_bn_train_mode(net)
        metrics = {"val_l1": float(torch.cat(l1).mean()), "val_psnr": float(torch.cat(p).mean()),
                   "val_ssim": float(torch.cat(s).mean())}
        if moved > 0:
            metrics["val_input_dependence"] = changed / moved
        return metrics

    last = stop_at if stop_at is not None else config.steps
    last = min(last, config.steps)
    metrics: dict[str, float] = {}
    frozen_bn_train_mode(net)
    bar = _progress(progress, config.steps, step)
    started = time.perf_counter() - elapsed
    try:
        while step < last:
            pick = torch.randint(len(train_idx), (config.batch,), generator=sampler)
            flip = torch.rand(config.batch, generator=sampler) < 0.5
            idx = train_tensor[pick]
            x, y = _as_float(naive[idx], device), _as_float(target[idx], device)
            flip = flip.to(device).view(-1, 1, 1, 1)
            x = torch.where(flip, x.flip(-1), x)
            y = torch.where(flip, y.flip(-1), y)
            w = weights[idx].to(device)
            w = torch.where(flip, w.flip(-1), w)
            m = _as_float(masks[idx], device)
            m = torch.where(flip, m.flip(-1), m)
            if config.colour_jitter > 0:
                x, y = colour_jittered(x, y, config.colour_jitter, sampler)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                output = refine(x, m)
            loss = suppressor_loss(output, y, config.ssim_weight, w, config.charbonnier_eps)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            lr = scheduler.get_last_lr()[0]
            scheduler.step()
            step += 1
            elapsed = time.perf_counter() - started
            row: dict[str, Any] = {"step": step, "train_loss": loss.item(), "lr": lr,
                                   "seconds": round(elapsed, 3)}
            if step % config.val_every == 0 or step == config.steps:
                metrics = validate()
                row.update(metrics)
            history.append(row)
            if on_log:
                on_log(row)
            if bar is not None:
                bar[0].update(bar[1], completed=step,
                              info=f"loss {loss.item():.4f}" + (
                                  f" val PSNR {metrics['val_psnr']:.2f}" if metrics else ""))
            if step % config.save_every == 0 or step == last:
                _save(out, checkpoint(metrics))
                _write_log(log_path(out), history)
    finally:
        if bar is not None:
            bar[0].stop()
    _save(out, checkpoint(metrics))
    _write_log(log_path(out), history)
    plot_curves(history, plot_path(out))
    return TrainResult(step, elapsed, metrics, out, log_path(out), plot_path(out))


def _progress(enabled: bool, total: int, completed: int):
    if not enabled:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(),
                        TextColumn("{task.fields[info]}"))
    progress.start()
    task = progress.add_task("train", total=total, completed=completed, info="")
    return progress, task


def _write_log(path: Path, history: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS)
        writer.writeheader()
        for row in history:
            writer.writerow({k: row.get(k, "") for k in LOG_COLUMNS})


def _read_log(path: Path, up_to: int) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="") as handle:
        for raw in csv.DictReader(handle):
            row = {k: (float(v) if v not in ("", None) else None) for k, v in raw.items()}
            row = {k: v for k, v in row.items() if v is not None}
            row["step"] = int(row["step"])
            if row["step"] <= up_to:
                rows.append(row)
    return rows


# --------------------------------------------------------------- plot (PIL, no matplotlib)


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Two panels: training loss (and its running mean) and validation PSNR, over steps."""
    from PIL import Image, ImageDraw

    width, height, margin = 900, 360, 50
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    panels = [("train loss", [(r["step"], r["train_loss"]) for r in history if "train_loss" in r]),
              ("val PSNR (dB)", [(r["step"], r["val_psnr"]) for r in history if "val_psnr" in r])]
    panel_width = (width - 3 * margin) // 2
    for k, (title, points) in enumerate(panels):
        left = margin + k * (panel_width + margin)
        box = (left, margin, left + panel_width, height - margin)
        draw.rectangle(box, outline="black")
        draw.text((left, 15), title, fill="black")
        if not points:
            continue
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        if k == 0 and len(ys) > 10:
            window = max(1, len(ys) // 50)
            ys = [sum(ys[max(0, i - window) : i + 1]) / len(ys[max(0, i - window) : i + 1])
                  for i in range(len(ys))]
        x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
        finite = [y for y in ys if math.isfinite(y)]
        y0, y1 = (min(finite), max(finite)) if finite else (0.0, 1.0)
        y1 = y1 if y1 > y0 else y0 + 1e-6

        def to_xy(x: float, y: float, box=box, x0=x0, x1=x1, y0=y0, y1=y1) -> tuple[float, float]:
            return (box[0] + (x - x0) / (x1 - x0) * (box[2] - box[0]),
                    box[3] - (y - y0) / (y1 - y0) * (box[3] - box[1]))

        line = [to_xy(x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(y)]
        if len(line) > 1:
            draw.line(line, fill=(200, 30, 30), width=2)
        elif line:
            draw.ellipse([line[0][0] - 2, line[0][1] - 2, line[0][0] + 2, line[0][1] + 2],
                         fill=(200, 30, 30))
        draw.text((box[0] - 45, box[1] - 4), f"{y1:.4g}", fill="black")
        draw.text((box[0] - 45, box[3] - 8), f"{y0:.4g}", fill="black")
        draw.text((box[0], box[3] + 6), f"{x0}", fill="black")
        draw.text((box[2] - 30, box[3] + 6), f"{x1} steps", fill="black")
    image.save(path)


__all__ = [
    "CHECKPOINT_FORMAT",
    "TrainConfig",
    "TrainResult",
    "band_weights",
    "load_pair_masks",
    "binary_composites",
    "load_pair_images",
    "plot_curves",
    "split_by_source",
    "ssim_differentiable",
    "suppressor_loss",
    "train_suppressor",
]
