"""Evaluation of the suppressors: the paper's protocol and the blend-pair protocol.

``paper`` (Gu & Gromov's table): the first N images of a folder (sorted by name) go through the
pipeline (invert → edit → generate → mask) once; each requested suppressor then produces the
result (followed by the pipeline's ``keep_outside``), compared with the original at the output
size on PSNR, SSIM, MAE, LPIPS and FID (:class:`~shared.metrics.MetricSuite`; a metric whose
weights are missing is reported, not fatal). ``params`` counts the suppressor network's
parameters (0 for naive and Poisson); ``images/s`` times the suppressor stage alone (mask,
edited image and original given), so the GAN's cost does not hide the blending's.

``blend`` (training pairs from ``facedit data blend-pairs``): each method's output against the
Poisson target (PSNR, SSIM, MAE), against the original outside the mask (mask < 0.5: PSNR,
MAE), its :func:`~shared.train.seam.seam_score` and
:func:`~shared.train.seam.colour_mismatch`. ``poisson`` is the target itself, so its
target columns are trivially perfect; ``binary`` is the composite with the mask binarised at
0.5 (edited inside, original outside), the input of a binary-composite MAResU-Net. The
network's output is taken raw (no ``keep_outside``), so the outside columns show what it
changes there.

Both write ``report.md`` (a Markdown table: rows = metrics, columns = methods), ``report.json``
and ``figure.png`` (a grid of the first few images: original | edited | mask | methods).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from shared.blend.naive import binary_composite

PAPER_METRICS = (("psnr", "PSNR ↑"), ("ssim", "SSIM ↑"), ("mae", "MAE ↓"), ("lpips", "LPIPS ↓"),
                 ("fid", "FID ↓"), ("params", "Params"), ("images_per_s", "Speed (images/s) ↑"))
BLEND_METRICS = (("target_psnr", "PSNR vs Poisson ↑"), ("target_ssim", "SSIM vs Poisson ↑"),
                 ("target_mae", "MAE vs Poisson ↓"), ("outside_psnr", "PSNR outside mask ↑"),
                 ("outside_mae", "MAE outside mask ↓"), ("seam", "Seam score ↓"),
                 ("colour_mismatch", "Colour mismatch ↓"),
                 ("params", "Params"), ("images_per_s", "Speed (images/s) ↑"))
FIGURE_ROWS = 4


@dataclass
class Report:
    protocol: str
    methods: list[str]
    values: dict[str, dict[str, Any]]  # method → metric → value
    notes: list[str] = field(default_factory=list)
    count: int = 0

    def markdown(self) -> str:
        rows = PAPER_METRICS if self.protocol == "paper" else BLEND_METRICS
        lines = [f"| metric | {' | '.join(self.methods)} |",
                 "|---|" + "---:|" * len(self.methods)]
        for key, label in rows:
            cells = [_format(key, self.values[m].get(key)) for m in self.methods]
            lines.append(f"| {label} | {' | '.join(cells)} |")
        text = "\n".join(lines) + f"\n\n{self.count} images.\n"
        if self.notes:
            text += "\n" + "\n".join(f"- {note}" for note in self.notes) + "\n"
        return text

    def write(self, out_dir: Path) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "report.md").write_text(self.markdown())
        (out_dir / "report.json").write_text(json.dumps(
            {"protocol": self.protocol, "count": self.count, "methods": self.methods,
             "values": self.values, "notes": self.notes}, indent=2, default=_json_default))
        return out_dir / "report.md"


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    raise TypeError(type(value).__name__)


def _format(key: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if key == "params":
        return f"{value / 1e6:.2f} M" if value else "0"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    if key in ("ssim", "target_ssim", "lpips"):
        return f"{value:.4f}"
    if key in ("mae", "target_mae", "outside_mae"):
        return f"{value:.5f}"
    return f"{value:.2f}"


def _param_count(suppressor: Any) -> int:
    network = getattr(suppressor, "network", None)
    return sum(p.numel() for p in network.parameters()) if network is not None else 0


# --------------------------------------------------------------- figure


def figure_grid(columns: dict[str, Tensor], path: Path, rows: int = FIGURE_ROWS,
                tile: int = 192) -> None:
    """A PNG grid: one column per entry (label on top), one row per image (first ``rows``)."""
    from PIL import Image, ImageDraw

    names = list(columns)
    count = min(rows, next(iter(columns.values())).shape[0])
    header = 18
    canvas = Image.new("RGB", (tile * len(names), header + tile * count), "white")
    draw = ImageDraw.Draw(canvas)
    for c, name in enumerate(names):
        draw.text((c * tile + 4, 3), name, fill="black")
        images = columns[name][:count].detach().float().cpu().clamp(0, 1)
        if images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)
        images = torch.nn.functional.interpolate(images, size=(tile, tile), mode="area"
                                                 if images.shape[-1] > tile else "bilinear")
        for r in range(count):
            pixels = (images[r].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            canvas.paste(Image.fromarray(pixels), (c * tile, header + r * tile))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


# --------------------------------------------------------------- paper protocol


def evaluate_paper(
    images: Sequence[Path],
    edits: Sequence[Any],
    pipeline: Any,
    suppressors: Sequence[str],
    *,
    metric_dirs: Sequence[Path] = (),
    batch_size: int = 4,
    figure: Path | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Report:
    """The paper's table for ``images`` edited with ``edits`` (a list of EditSpec).

    ``pipeline``: an :class:`~shared.editing.pipeline.EditPipeline` (its config's output size
    is used).
    A suppressor that cannot run (missing weights, unknown name) gets an ``n/a`` column and
    a note saying why.
    """
    from shared.core.contracts import SUPPRESSORS as SUPPRESSOR_NAMES
    from shared.core.errors import FaceditError
    from shared.editing.imaging import decode_image, to_tensor
    from shared.editing.pipeline import keep_outside, resize
    from shared.metrics import MetricSuite

    if not images:
        raise ValueError("images: no images to evaluate")
    config = pipeline.config.with_changes(suppressor="naive", intermediates=False)
    base = pipeline.with_config(config)
    size = base.output_size
    notes: list[str] = list(getattr(pipeline.bundle, "notes", []))
    runnable: dict[str, Any] = {}
    values: dict[str, dict[str, Any]] = {name: {} for name in suppressors}
    for name in suppressors:
        try:
            if name not in SUPPRESSOR_NAMES:
                raise ValueError(f"suppressor {name!r} is not available in this build "
                                 f"(known: {list(SUPPRESSOR_NAMES)})")
            runnable[name] = base.suppressor(name)
            values[name]["params"] = _param_count(runnable[name])
        except (FaceditError, ValueError) as exc:
            notes.append(f"{name}: not evaluated — {getattr(exc, 'message', None) or exc}")
    suites = {name: MetricSuite(metric_dirs) for name in runnable}
    seconds = dict.fromkeys(runnable, 0.0)
    shown: dict[str, list[Tensor]] = {"original": [], "edited": [], "mask": []}
    shown.update({name: [] for name in runnable})
    count = 0
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        tensors = [resize(to_tensor(decode_image(Path(p).read_bytes(), name=str(p)).pixels), size)
                   for p in chunk]
        batch = torch.cat(tensors)
        output = base(batch, [list(edits)] * len(chunk))
        original = resize(batch.to(pipeline.bundle.device), size)
        if count < FIGURE_ROWS:
            shown["original"].append(original.cpu())
            shown["edited"].append(output.edited.cpu())
            shown["mask"].append(output.mask.cpu())
        for name, suppressor in runnable.items():
            _synchronize(original.device)
            tic = time.perf_counter()
            with torch.inference_mode():
                result = suppressor(original, output.edited, output.mask)
                if config.keep_outside:
                    result = keep_outside(result, original, output.mask, config.keep_outside_margin)
                result = result.clamp(0, 1)
            _synchronize(original.device)
            seconds[name] += time.perf_counter() - tic
            suites[name].update(result.float(), original.float())
            if count < FIGURE_ROWS:
                shown[name].append(result.cpu())
        count += len(chunk)
        if on_batch:
            on_batch(len(chunk))
    for name, suite in suites.items():
        report = suite.report()
        values[name].update({k: report.get(k) for k in ("psnr", "ssim", "mae", "lpips", "fid")})
        values[name]["images_per_s"] = count / seconds[name] if seconds[name] > 0 else None
        for metric, reason in {**report.get("missing", {}), **report.get("skipped", {})}.items():
            note = f"{metric}: {reason}"
            if note not in notes:
                notes.append(note)
    if figure is not None:
        figure_grid({k: torch.cat(v) for k, v in shown.items() if v}, figure)
    edits_text = ", ".join(str(e) for e in edits)
    notes.insert(0, f"edits {edits_text}; output {size}²; models {pipeline.bundle.preset}")
    return Report("paper", list(suppressors), values, notes, count)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------- blend protocol


def _masked_psnr_mae(result: Tensor, reference: Tensor, region: Tensor) -> tuple[Tensor, Tensor]:
    weight = region.to(result.dtype).expand_as(result)
    count = weight.sum(dim=(1, 2, 3)).clamp_min(1)
    diff = (result - reference) * weight
    mse = (diff * diff).sum(dim=(1, 2, 3)) / count
    mae = diff.abs().sum(dim=(1, 2, 3)) / count
    return 10 * torch.log10(1 / mse), mae


def evaluate_blend(
    pairs_dir: Path,
    network: torch.nn.Module | None,
    *,
    methods: Sequence[str] = ("naive", "binary", "poisson", "maresunet"),
    device: str | torch.device = "cpu",
    batch_size: int = 4,
    limit: int | None = None,
    figure: Path | None = None,
) -> Report:
    """Methods on blend pairs vs the Poisson target and the original (see module doc)."""
    from shared.blend.suppressor import MAResUNetSuppressor
    from shared.metrics import mae, psnr, ssim
    from shared.train.pairs import read_manifest, read_png
    from shared.train.seam import colour_mismatch, seam_score

    rows = read_manifest(Path(pairs_dir))[:limit]
    if "maresunet" in methods and network is None:
        raise ValueError("ckpt: method maresunet needs a checkpoint")
    device = torch.device(device)
    if network is not None:
        network = network.to(device).eval()
        suppressor = MAResUNetSuppressor(network)

    def load(row: dict[str, Any], kind: str) -> Tensor:
        array = read_png(Path(pairs_dir) / row[kind])
        tensor = torch.from_numpy(array)
        return (tensor[None] if array.ndim == 2 else tensor.permute(2, 0, 1))[None]

    per: dict[str, dict[str, list[Tensor]]] = {m: {} for m in methods}
    seconds = dict.fromkeys(methods, 0.0)
    shown: dict[str, list[Tensor]] = {k: [] for k in ("original", "edited", "mask", *methods)}
    count = 0
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        batch = {k: torch.cat([load(r, k) for r in chunk]).to(device)
                 for k in ("original", "edited", "mask", "naive", "poisson")}
        outside = batch["mask"] < 0.5
        for method in methods:
            tic = time.perf_counter()
            if method == "naive":
                result = batch["naive"]
            elif method == "binary":
                result = binary_composite(batch["original"], batch["edited"], batch["mask"])
            elif method == "poisson":
                result = batch["poisson"]
            elif method == "maresunet":
                with torch.inference_mode():
                    result = suppressor(batch["original"], batch["edited"], batch["mask"])
                _synchronize(device)
            else:
                raise ValueError(f"methods: unknown method {method!r}")
            seconds[method] += time.perf_counter() - tic
            out_psnr, out_mae = _masked_psnr_mae(result, batch["original"], outside)
            values = {"target_psnr": psnr(result, batch["poisson"]),
                      "target_ssim": ssim(result, batch["poisson"]),
                      "target_mae": mae(result, batch["poisson"]),
                      "outside_psnr": out_psnr, "outside_mae": out_mae,
                      "seam": seam_score(result, batch["original"], batch["mask"]),
                      "colour_mismatch": colour_mismatch(result, batch["original"],
                                                         batch["mask"])}
            for key, value in values.items():
                per[method].setdefault(key, []).append(value.double().cpu())
            if count < FIGURE_ROWS:
                shown[method].append(result.cpu())
        if count < FIGURE_ROWS:
            for key in ("original", "edited", "mask"):
                shown[key].append(batch[key].cpu())
        count += len(chunk)
    values: dict[str, dict[str, Any]] = {}
    for method in methods:
        values[method] = {key: _mean(torch.cat(v)) for key, v in per[method].items()}
        values[method]["params"] = (sum(p.numel() for p in network.parameters())
                                    if method == "maresunet" and network is not None else 0)
        values[method]["images_per_s"] = (count / seconds[method]
                                          if method == "maresunet" and seconds[method] else None)
    if figure is not None:
        figure_grid({k: torch.cat(v) for k, v in shown.items() if v}, figure)
    notes = ["naive and poisson are read from the pair files (no speed measured); "
             "maresunet is the raw network output (no keep_outside)",
             "outside = mask < 0.5; seam = ‖∇ lowpass(R − O)‖² ×1000 on the mask's boundary "
             "band; colour mismatch = Σ_c |lowpass(R − O)| just inside the 0.5 contour "
             "(shared/train/seam.py)"]
    return Report("blend", list(methods), values, notes, count)


def _mean(values: Tensor) -> float:
    """Mean; PSNR of identical images (∞) stays ∞ only when every image is identical."""
    finite = values[torch.isfinite(values)]
    if finite.numel() == values.numel():
        return float(values.mean())
    if finite.numel() == 0:
        return math.inf
    return float(finite.mean())


__all__ = ["Report", "evaluate_blend", "evaluate_paper", "figure_grid"]
