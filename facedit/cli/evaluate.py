"""``facedit eval``: compare suppressors (:mod:`shared.train.evaluate`).

``--protocol paper`` edits the first images of a folder and scores every suppressor against
the originals (the paper's table); ``--protocol blend`` scores a MAResU-Net checkpoint against
the Poisson targets of held-out blend pairs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from facedit.cli.loaders import build_pipeline, check_attributes, load_models
from facedit.cli.options import DEVICE_OPTION, MODELS_OPTION, parse_edits
from facedit.console import console, fail_usage, say
from facedit.progress import counter
from shared.core.config import get_settings
from shared.core.contracts import PipelineConfig
from shared.core.edits import EditSpec
from shared.core.errors import InvalidEditRequest


def eval_command(
    data: Path = typer.Argument(..., help="paper: aligned faces folder; blend: pairs folder"),
    protocol: str = typer.Option(..., "--protocol", help="paper | blend"),
    out: Path = typer.Option(Path("eval-output"), "--out", help="report.md, report.json, figure"),
    first: int = typer.Option(1000, "--first", min=1, help="paper: the first N images by name"),
    edit: list[str] = typer.Option([], "--edit", "-e", help="paper: ATTRIBUTE=STRENGTH"),
    suppressors: str = typer.Option("naive,poisson,maresunet,sdea", "--suppressors",
                                    help="paper: comma-separated suppressors"),
    models: str = MODELS_OPTION,
    size: int = typer.Option(1024, "--size", help="paper: output size compared at"),
    ckpt: Path = typer.Option(None, "--ckpt", help="MAResU-Net checkpoint (blend: required; "
                                                   "paper: overrides the bundle's)"),
    batch_size: int = typer.Option(4, "--batch-size", min=1),
    device: str = DEVICE_OPTION,
    limit: int = typer.Option(None, "--limit", min=1, help="blend: the first N pairs"),
) -> None:
    """Compare suppressors: the paper's table (`paper`) or on blend pairs (`blend`)."""
    network = _load_checkpoint(ckpt)
    if protocol == "blend":
        report = _blend_report(data, network, out, device=device, batch_size=batch_size,
                               limit=limit)
    elif protocol == "paper":
        report = _paper_report(data, network, out, edit=edit, first=first,
                               suppressors=suppressors, models=models, size=size,
                               device=device, batch_size=batch_size)
    else:
        fail_usage(f"--protocol {protocol!r}: use paper or blend")
    path = report.write(out)
    say(report.markdown())
    say(f"wrote {path}, {out / 'report.json'}, {out / 'figure.png'}")


def _load_checkpoint(ckpt: Path | None) -> Any:
    """The MAResU-Net of ``--ckpt`` (None without one), or exit 2."""
    if ckpt is None:
        return None
    from shared.models.maresunet import load_maresunet

    try:
        return load_maresunet(ckpt)
    except (OSError, ValueError) as exc:
        fail_usage(f"--ckpt {ckpt}: {exc}")


# ---------------------------------------------------------------- blend protocol


def _blend_report(data: Path, network: Any, out: Path, *, device: str | None, batch_size: int,
                  limit: int | None) -> Any:
    from shared.editing.bundle import resolve_device
    from shared.train.evaluate import evaluate_blend

    if network is None:
        fail_usage("--protocol blend needs --ckpt CKPT")
    try:
        return evaluate_blend(data, network, device=resolve_device(device or "cpu"),
                              batch_size=batch_size, limit=limit, figure=out / "figure.png")
    except ValueError as exc:
        fail_usage(str(exc))


# ---------------------------------------------------------------- paper protocol


def _paper_report(data: Path, network: Any, out: Path, *, edit: list[str], first: int,
                  suppressors: str, models: str | None, size: int, device: str | None,
                  batch_size: int) -> Any:
    from shared.train.evaluate import evaluate_paper

    edits = parse_edits(edit)
    names = _suppressor_names(suppressors)
    images = _first_images(data, first)
    pipeline = _paper_pipeline(models, device, edits, size, network)
    settings = get_settings()
    with counter(console, "evaluating") as progress:
        task = progress.add_task("eval", total=len(images))
        return evaluate_paper(
            images, edits, pipeline, names,
            metric_dirs=[settings.weights_dir, settings.weights_dir / "metrics"],
            batch_size=batch_size, figure=out / "figure.png",
            on_batch=lambda n: progress.advance(task, n),
        )  # fmt: skip


def _suppressor_names(suppressors: str) -> list[str]:
    names = [s.strip() for s in suppressors.split(",") if s.strip()]
    if not names:
        fail_usage("--suppressors: name at least one suppressor")
    return names


def _first_images(data: Path, first: int) -> list[Path]:
    from shared.train.pairs import list_images

    try:
        images = list_images(data)[:first]
    except ValueError as exc:
        fail_usage(str(exc))
    if not images:
        fail_usage(f"{data}: no images")
    return images


def _paper_pipeline(models: str | None, device: str | None, edits: list[EditSpec], size: int,
                    network: Any) -> Any:
    """The pipeline at output ``size``; with ``network`` (``--ckpt``) as its MAResU-Net, in a
    copy of the loaded bundle (the bundle itself is left as it is)."""
    bundle = load_models(models, device)
    check_attributes(bundle, edits)
    try:
        config = PipelineConfig.from_options({"suppressor": "naive", "output_size": size})
    except InvalidEditRequest as exc:
        fail_usage(exc.message)
    if network is not None:
        bundle = bundle.with_suppressor(network)
    return build_pipeline(bundle, config)
