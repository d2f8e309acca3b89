"""The ``facedit`` command: the composition root wiring settings, models, store and storage."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from facedit.console import cell, console, fail, fail_usage, say
from facedit.run_cli import load_models, load_pipeline, parse_edits
from shared.core.config import get_settings
from shared.core.errors import FaceditError, InvalidEditRequest

app = typer.Typer(
    help="Batch face-attribute editing without blending artifacts.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # help texts are shown as written: no [..] is taken for markup
)


MODELS_HELP = "toy, auto (official weights in FACEDIT_WEIGHTS_DIR if present) or a weights folder"


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", "-o", help="output folder"),
    models: str = typer.Option(None, "--models", help=MODELS_HELP),
) -> None:
    """Show the method on sample portraits: seams removed by Poisson blending, in a gallery."""
    from facedit.demo import run_demo

    run_demo(out, models)


weights_app = typer.Typer(help="List, check and import model weight files.", no_args_is_help=True,
                          rich_markup_mode=None)
app.add_typer(weights_app, name="weights")


@weights_app.command("list")
def weights_list(
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
) -> None:
    """Every file facedit can use: role, format, found or missing, where it is published."""
    from shared.editing.weights import catalogue

    settings = get_settings()
    if as_json:
        import json

        for entry, found in catalogue(settings.weights_dir):
            print(json.dumps({"file": entry.name, "role": entry.role, "format": entry.format,
                              "found": str(found) if found else None,
                              "optional": entry.optional, "source": entry.source}))
        return
    table = Table(title=f"weights in {settings.weights_dir}")
    for column in ("file", "role", "format", "status", "where to get it"):
        table.add_column(column, overflow="fold")
    for entry, found in catalogue(settings.weights_dir):
        status = cell(f"found {found}", "green") if found else (
            cell("missing", "red") if not entry.optional else cell("missing (optional)", "yellow"))
        table.add_row(cell(entry.name), cell(entry.role), cell(entry.format), status,
                      cell(entry.source))
    console.print(table)
    say("Bring a file with `facedit weights import PATH`; it is checked and its sha256 "
        "recorded in manifest.json.")


@weights_app.command("check")
def weights_check(
    paths: list[Path] = typer.Argument(..., help="files to check"),
    trust: bool = typer.Option(False, "--trust",
                               help="allow full unpickling (only for files you trust)"),
) -> None:
    """Say what each file is and whether it is usable (exit 1 if any is not)."""
    from shared.editing.weights import check_file

    bad = 0
    for path in paths:
        result = check_file(path, trust=trust)
        bad += not result.ok
        colour = "green" if result.ok else "red"
        say(result.line(), colour)
    raise typer.Exit(1 if bad else 0)


@weights_app.command("import")
def weights_import(
    path: Path = typer.Argument(..., help="file to import"),
    name: str = typer.Option(None, "--name", help="name inside FACEDIT_WEIGHTS_DIR"),
    trust: bool = typer.Option(False, "--trust"),
) -> None:
    """Check a file, copy it into FACEDIT_WEIGHTS_DIR and record its sha256."""
    from shared.editing.weights import import_file

    settings = get_settings()
    try:
        result, target = import_file(path, settings.weights_dir, name=name, trust=trust)
    except ValueError as exc:
        fail(str(exc))
    say(f"imported {target} ({result.kind}; sha256 {result.sha256})")


# ---------------------------------------------------------------- data, train, eval

data_app = typer.Typer(help="Build datasets (suppressor training pairs).", no_args_is_help=True,
                       rich_markup_mode=None)
app.add_typer(data_app, name="data")
train_app = typer.Typer(help="Train models (the MAResU-Net suppressor).", no_args_is_help=True,
                        rich_markup_mode=None)
app.add_typer(train_app, name="train")


@data_app.command("blend-pairs")
def data_blend_pairs(
    src_dir: Path = typer.Argument(..., help="folder of face images (sorted by name)"),
    out_dir: Path = typer.Argument(..., help="where the pair PNGs and manifest go"),
    source: str = typer.Option("synthetic", "--source", help="synthetic | gan"),
    size: int = typer.Option(256, "--size", help="square side of every pair image"),
    per_image: int = typer.Option(1, "--per-image", min=1, help="pairs per face"),
    seed: int = typer.Option(0, "--seed"),
    limit: int = typer.Option(None, "--limit", min=1, help="use only the first N images"),
    align: bool = typer.Option(False, "--align",
                               help="FFHQ-align unaligned photos first (dlib); "
                                    "else non-square images are centre-cropped"),
    models: str = typer.Option(None, "--models", help=MODELS_HELP + " (--source gan)"),
    device: str = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N"),
) -> None:
    """Training pairs: original, edited, mask, naive composite, Poisson composite (the target)."""
    from shared.train.pairs import SOURCES, list_images, write_pairs

    if source not in SOURCES:
        fail_usage(f"--source {source!r}: use one of {list(SOURCES)}")
    bundle = load_models(models, device) if source == "gan" else None
    try:
        total = len(list_images(src_dir)[:limit]) * per_image
    except ValueError as exc:
        fail_usage(str(exc))
    with Progress(TextColumn("[bold]pairs"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("pairs", total=total)
        try:
            rows = write_pairs(src_dir, out_dir, source=source, size=size, per_image=per_image,
                               seed=seed, limit=limit, align=align, bundle=bundle,
                               on_pair=lambda row: progress.advance(task))
        except (ValueError, FaceditError) as exc:
            fail_usage(getattr(exc, "message", None) or str(exc))
    skipped = total - len(rows)
    say(f"wrote {len(rows)} pairs to {out_dir} (manifest.jsonl, manifest.csv)"
                  + (f"; {skipped // per_image} image(s) skipped (see manifest.jsonl)"
                     if skipped else ""))


@train_app.command("suppressor")
def train_suppressor_command(
    pairs: Path = typer.Option(..., "--pairs", help="folder written by `facedit data blend-pairs`"),
    out: Path = typer.Option(..., "--out", help="checkpoint file (log .log.csv, plot .curves.png)"),
    size: int = typer.Option(256, "--size", help="training resolution (multiple of 32)"),
    steps: int = typer.Option(1000, "--steps", min=1),
    batch: int = typer.Option(4, "--batch", min=1),
    lr: float = typer.Option(1e-4, "--lr", help="peak learning rate (AdamW, cosine)"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
    val_fraction: float = typer.Option(0.1, "--val-fraction"),
    base_width: int = typer.Option(64, "--base-width", help="64 = the paper's MAResU-Net"),
    seed: int = typer.Option(0, "--seed"),
    val_every: int = typer.Option(50, "--val-every", min=1),
    save_every: int = typer.Option(100, "--save-every", min=1),
    resume: bool = typer.Option(False, "--resume", help="continue from --out if it exists"),
    stop_at: int = typer.Option(None, "--stop-at", min=1,
                                help="stop after this step (continue later with --resume)"),
    mask_input: bool = typer.Option(
        False, "--mask-input",
        help="give the network the blend mask as a 4th input channel (facedit's variant; "
             "the paper's network sees the composite only)"),
    composite: str = typer.Option(
        "binary", "--composite",
        help="input composite: binary (edit where mask ≥ 0.5, as the Poisson target) | soft "
             "(the pairs' naive file)"),
    colour_jitter: float = typer.Option(
        0.0, "--colour-jitter", min=0.0, max=1.0,
        help="augmentation: random channel order, per-channel gain exp(±j) and offset ±j/2, "
             "alike on input and target (0 = off)"),
) -> None:
    """Train MAResU-Net to turn naive composites into Poisson composites."""
    from shared.train.suppressor import TrainConfig, train_suppressor

    config = TrainConfig(pairs=str(pairs), out=str(out), size=size, steps=steps, batch=batch,
                         lr=lr, device=device, val_fraction=val_fraction, base_width=base_width,
                         seed=seed, val_every=val_every, save_every=save_every,
                         mask_input=mask_input, composite=composite,
                         colour_jitter=colour_jitter)
    try:
        result = train_suppressor(config, resume=resume, stop_at=stop_at)
    except (ValueError, FaceditError) as exc:
        fail_usage(getattr(exc, "message", None) or str(exc))
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
    say(f"step {result.step}/{steps} in {result.seconds:.1f} s; {metrics or 'no val'}; "
                  f"wrote {result.checkpoint}, {result.log}, {result.plot}")


@app.command("eval")
def eval_command(
    data: Path = typer.Argument(..., help="paper: aligned faces folder; blend: pairs folder"),
    protocol: str = typer.Option(..., "--protocol", help="paper | blend"),
    out: Path = typer.Option(Path("eval-output"), "--out", help="report.md, report.json, figure"),
    first: int = typer.Option(1000, "--first", min=1, help="paper: the first N images by name"),
    edit: list[str] = typer.Option([], "--edit", "-e", help="paper: ATTRIBUTE=STRENGTH"),
    suppressors: str = typer.Option("naive,poisson,maresunet,sdea", "--suppressors",
                                    help="paper: comma-separated suppressors"),
    models: str = typer.Option(None, "--models", help=MODELS_HELP),
    size: int = typer.Option(1024, "--size", help="paper: output size compared at"),
    ckpt: Path = typer.Option(None, "--ckpt", help="MAResU-Net checkpoint (blend: required; "
                                                   "paper: overrides the bundle's)"),
    batch_size: int = typer.Option(4, "--batch-size", min=1),
    device: str = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N"),
    limit: int = typer.Option(None, "--limit", min=1, help="blend: the first N pairs"),
) -> None:
    """Compare suppressors: the paper's table (`paper`) or on blend pairs (`blend`)."""
    from shared.models.maresunet import load_maresunet
    from shared.train import evaluate

    settings = get_settings()
    network = None
    if ckpt is not None:
        try:
            network = load_maresunet(ckpt)
        except (OSError, ValueError) as exc:
            fail_usage(f"--ckpt {ckpt}: {exc}")
    if protocol == "blend":
        if network is None:
            fail_usage("--protocol blend needs --ckpt CKPT")
        from shared.editing.bundle import resolve_device

        try:
            report = evaluate.evaluate_blend(data, network, device=resolve_device(device or "cpu"),
                                             batch_size=batch_size, limit=limit,
                                             figure=out / "figure.png")
        except ValueError as exc:
            fail_usage(str(exc))
    elif protocol == "paper":
        from shared.train.pairs import list_images

        edits = parse_edits(edit)
        names = [s.strip() for s in suppressors.split(",") if s.strip()]
        if not names:
            fail_usage("--suppressors: name at least one suppressor")
        try:
            images = list_images(data)[:first]
        except ValueError as exc:
            fail_usage(str(exc))
        if not images:
            fail_usage(f"{data}: no images")
        pipeline = load_pipeline(models, device, edits, {"suppressor": "naive"})
        if network is not None:
            pipeline.bundle.suppressor_net = network.to(pipeline.bundle.device)
        try:
            pipeline = pipeline.with_config(pipeline.config.with_changes(output_size=size))
        except InvalidEditRequest as exc:
            fail_usage(exc.message)
        metric_dirs = [settings.weights_dir, settings.weights_dir / "metrics"]
        with Progress(TextColumn("[bold]evaluating"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("eval", total=len(images))
            report = evaluate.evaluate_paper(
                images, edits, pipeline, names, metric_dirs=metric_dirs, batch_size=batch_size,
                figure=out / "figure.png", on_batch=lambda n: progress.advance(task, n))
    else:
        fail_usage(f"--protocol {protocol!r}: use paper or blend")
    path = report.write(out)
    say(report.markdown())
    say(f"wrote {path}, {out / 'report.json'}, {out / 'figure.png'}")


def _register_subcommands() -> None:
    from facedit import run_cli, service_cli

    run_cli.register(app)
    service_cli.register(app)


_register_subcommands()


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())
