"""The ``facedit`` command: the composition root wiring settings, models, store and storage."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.config import get_settings
from shared.edits import EditSpec, parse_edit
from shared.errors import FaceditError, InvalidEditRequest

app = typer.Typer(
    help="Batch face-attribute editing without blending artifacts.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


def _fail_usage(message: str) -> None:
    err_console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


def _parse_edits(texts: list[str]) -> list[EditSpec]:
    if not texts:
        _fail_usage("at least one --edit ATTRIBUTE=STRENGTH is required")
    try:
        return [parse_edit(t) for t in texts]
    except InvalidEditRequest as exc:
        _fail_usage(exc.message)
    raise AssertionError


def _pipeline_options(
    suppressor: str | None,
    activation: str | None,
    output_size: int | None,
    intermediates: bool,
) -> dict:
    from facedit.options import pipeline_options
    from shared.pipeline import PipelineConfig

    options = pipeline_options(suppressor, activation, output_size, intermediates)
    try:
        PipelineConfig.from_options(options)
    except InvalidEditRequest as exc:
        _fail_usage(exc.message)
    return options


def _load_pipeline(models: str | None, device: str | None, edits: list[EditSpec], options: dict):
    from shared.bundle import load_bundle
    from shared.pipeline import EditPipeline, PipelineConfig

    settings = get_settings()
    try:
        bundle = load_bundle(models or settings.models, settings.weights_dir,
                             device or settings.device)
    except FaceditError as exc:
        _fail_usage(exc.message)
    for note in bundle.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    for spec in edits:
        try:
            bundle.check_attribute(spec.attribute)
        except InvalidEditRequest as exc:
            _fail_usage(exc.message)
    config = PipelineConfig.from_options(options)
    if config.suppressor not in bundle.available_suppressors():
        from shared.bundle import NETWORK_SUPPRESSORS

        _fail_usage(f"suppressor {config.suppressor} needs "
                    f"{NETWORK_SUPPRESSORS[config.suppressor]}; use --suppressor poisson or see "
                    "`facedit weights list`")
    return EditPipeline(bundle, config)


ALIGN_HELP = ("auto: align unaligned photos (needs facedit[align]) and paste the edit back; "
              "always; never")


def _job_options(pipeline_options: dict, align: str, all_faces: bool) -> dict:
    from shared.face_stage import check_align_options

    options = {"pipeline": pipeline_options, "align": align, "all_faces": all_faces}
    try:
        check_align_options(options)
    except InvalidEditRequest as exc:
        _fail_usage(exc.message)
    return options


def _embedded_runtime(storage_url: str):
    """The migrated job store and the storage an in-process run writes to."""
    from shared.jobs import JobStore
    from shared.storage import open_storage

    settings = get_settings()
    store = JobStore(settings.database_url)
    store.migrate()
    return store, open_storage(storage_url, settings.s3_endpoint_url, settings.s3_region)


SUPPRESSOR_HELP = "maresunet | poisson | poisson-opencv | naive | sdea"
MODELS_HELP = "toy, auto (official weights in FACEDIT_WEIGHTS_DIR if present) or a weights folder"


# Options shared by `facedit run` and `facedit edit` (one declaration each).
MODELS_OPTION = typer.Option(None, "--models", help=MODELS_HELP)
SUPPRESSOR_OPTION = typer.Option(None, "--suppressor", help=SUPPRESSOR_HELP)
ACTIVATION_OPTION = typer.Option(None, "--activation", help="feature_diff | diffcam")
OUTPUT_SIZE_OPTION = typer.Option(None, "--output-size", help="square output side in pixels")
DEVICE_OPTION = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N")
ALIGN_OPTION = typer.Option("auto", "--align", help=ALIGN_HELP)
ALL_FACES_OPTION = typer.Option(False, "--all-faces", help="edit every face, not the largest")


@app.command()
def run(
    inputs: list[Path] = typer.Argument(..., help="image files and/or folders of images"),
    edit: list[str] = typer.Option([], "--edit", "-e", help="ATTRIBUTE=STRENGTH[@START-END]"),
    out: Path = typer.Option(..., "--out", "-o", help="output folder (results, jobs.jsonl)"),
    models: str = MODELS_OPTION,
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="images per GPU batch"),
    suppressor: str = SUPPRESSOR_OPTION,
    activation: str = ACTIVATION_OPTION,
    output_size: int = OUTPUT_SIZE_OPTION,
    save_intermediates: bool = typer.Option(False, "--save-intermediates"),
    device: str = DEVICE_OPTION,
    align: str = ALIGN_OPTION,
    all_faces: bool = ALL_FACES_OPTION,
) -> None:
    """Edit a batch of photos in-process (embedded runtime: SQLite + local storage)."""
    from facedit.embedded import collect_inputs, run_embedded

    settings = get_settings()
    edits = _parse_edits(edit)
    options = _pipeline_options(suppressor, activation, output_size, save_intermediates)
    job_options = _job_options(options, align, all_faces)
    paths = collect_inputs(inputs)
    if not paths:
        _fail_usage("no input images found")
    pipeline = _load_pipeline(models, device, edits, options)
    storage_url = os.environ.get("FACEDIT_STORAGE_URL") or f"file://{out.absolute()}"
    store, storage = _embedded_runtime(storage_url)
    with Progress(
        TextColumn("[bold]editing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[last]}"), console=console, transient=False,
    ) as progress:
        task = progress.add_task("run", total=len(paths), last="")

        def on_done(record) -> None:
            progress.update(task, advance=1, last=Path(record.input).name)

        batch_id, records = run_embedded(
            paths, edits, out, store=store, storage=storage, pipeline=pipeline,
            job_options=job_options, batch_size=batch_size or settings.batch_size,
            settings=settings, on_done=on_done,
        )
    _print_summary(records)
    failed = sum(1 for r in records if r.outcome.status != "succeeded")
    console.print(
        f"batch {batch_id}: {len(records) - failed} succeeded, {failed} failed; "
        f"results in {out}, log in {out / 'jobs.jsonl'}"
    )
    if pipeline.bundle.preset == "toy":
        console.print("[yellow]toy preset: outputs are not meaningful edits[/yellow]")
    raise typer.Exit(0 if failed == 0 else 1)


@app.command()
def edit(
    image: Path = typer.Argument(..., help="the photo to edit (aligned crop or whole photo)"),
    edit: list[str] = typer.Option([], "--edit", "-e", help="ATTRIBUTE=STRENGTH[@START-END]"),
    output: Path = typer.Option(..., "--output", "-o", help="result file (.png or .jpg)"),
    models: str = MODELS_OPTION,
    suppressor: str = SUPPRESSOR_OPTION,
    activation: str = ACTIVATION_OPTION,
    output_size: int = OUTPUT_SIZE_OPTION,
    save_intermediates: bool = typer.Option(False, "--save-intermediates",
                                            help="also write OUT.mask.png, OUT.edited.png, …"),
    device: str = DEVICE_OPTION,
    align: str = ALIGN_OPTION,
    all_faces: bool = ALL_FACES_OPTION,
) -> None:
    """Edit one photo; an unaligned photo is aligned and the edit pasted back into it."""
    from facedit.embedded import run_embedded

    settings = get_settings()
    edits = _parse_edits(edit)
    fmt = output.suffix.lower().lstrip(".")
    if fmt not in {"png", "jpg", "jpeg"}:
        _fail_usage(f"--output {output}: use a .png or .jpg file name")
    options = _pipeline_options(suppressor, activation, output_size, save_intermediates)
    job_options = _job_options(options, align, all_faces)
    job_options["format"] = "jpg" if fmt in {"jpg", "jpeg"} else "png"
    pipeline = _load_pipeline(models, device, edits, options)
    store, storage = _embedded_runtime(settings.storage_url)
    batch_id, records = run_embedded(
        [image], edits, settings.data_dir / "edits", store=store, storage=storage,
        pipeline=pipeline, job_options=job_options, batch_size=1, settings=settings,
    )
    outcome = records[0].outcome
    if outcome.status != "succeeded":
        err_console.print(f"[red]{outcome.error_code}[/red]: {outcome.error_message}")
        raise typer.Exit(1)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(storage.get(storage.key_from_uri(outcome.output_uri)))
    written = [output]
    job = store.get_job(records[0].job_id)
    for name, uri in sorted((job.intermediates or {}).items()):
        path = output.with_name(f"{output.stem}.{name}.png")
        path.write_bytes(storage.get(storage.key_from_uri(uri)))
        written.append(path)
    console.print(f"wrote {', '.join(str(p) for p in written)} ({outcome.seconds:.2f} s; "
                  f"job {records[0].job_id})")
    if pipeline.bundle.preset == "toy":
        console.print("[yellow]toy preset: outputs are not meaningful edits[/yellow]")


def _print_summary(records) -> None:
    table = Table(title="facedit run")
    table.add_column("input", overflow="fold")
    table.add_column("status")
    table.add_column("seconds", justify="right")
    table.add_column("error", overflow="fold")
    shown = records if len(records) <= 40 else [
        r for r in records if r.outcome.status != "succeeded"
    ][:40] or records[:10]
    for record in shown:
        o = record.outcome
        colour = "green" if o.status == "succeeded" else "red"
        error = f"{o.error_code}: {o.error_message}" if o.error_code else ""
        table.add_row(record.input, f"[{colour}]{o.status}[/{colour}]", f"{o.seconds:.3f}", error)
    if len(shown) < len(records):
        table.caption = f"{len(records) - len(shown)} more rows in jobs.jsonl"
    console.print(table)


@app.command()
def attributes(
    models: str = typer.Option(None, "--models", help=MODELS_HELP),
) -> None:
    """List the edits available with the current weights."""
    from shared.bundle import load_bundle

    settings = get_settings()
    bundle = load_bundle(models or settings.models, settings.weights_dir, "cpu")
    table = Table(title=f"attributes ({bundle.preset})")
    for column in ("name", "kind", "layers", "strength range", "source"):
        table.add_column(column)
    for info in bundle.directions.available():
        table.add_row(
            info.name, info.kind,
            f"{info.default_layers[0]}-{info.default_layers[1]}" if info.default_layers else "all",
            f"{info.strength_range[0]:g} … {info.strength_range[1]:g}", str(info.file or ""),
        )
    console.print(table)




@app.command()
def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", "-o", help="output folder"),
    models: str = typer.Option(None, "--models", help=MODELS_HELP),
) -> None:
    """Run the main job on sample portraits shipped with scikit-image."""
    from facedit.demo import write_demo_inputs

    inputs = write_demo_inputs(out / "inputs")
    console.print(f"demo: {len(inputs)} sample portraits in {out / 'inputs'}")
    run(inputs=inputs, edit=["smile=+3", "age=-2"], out=out / "results", models=models,
        batch_size=None, suppressor=None, activation=None, output_size=None,
        save_intermediates=True, device=None, align="never", all_faces=False)


weights_app = typer.Typer(help="List, check and import model weight files.", no_args_is_help=True)
app.add_typer(weights_app, name="weights")


@weights_app.command("list")
def weights_list(
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
) -> None:
    """Every file facedit can use: role, format, found or missing, where it is published."""
    from shared.weights import catalogue

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
        status = f"[green]found[/green] {found}" if found else (
            "[red]missing[/red]" if not entry.optional else "[yellow]missing[/yellow] (optional)")
        table.add_row(entry.name, entry.role, entry.format, status, entry.source)
    console.print(table)
    console.print("Bring a file with `facedit weights import PATH`; it is checked and its sha256 "
                  "recorded in manifest.json.")


@weights_app.command("check")
def weights_check(
    paths: list[Path] = typer.Argument(..., help="files to check"),
    trust: bool = typer.Option(False, "--trust",
                               help="allow full unpickling (only for files you trust)"),
) -> None:
    """Say what each file is and whether it is usable (exit 1 if any is not)."""
    from shared.weights import check_file

    bad = 0
    for path in paths:
        result = check_file(path, trust=trust)
        bad += not result.ok
        colour = "green" if result.ok else "red"
        console.print(f"[{colour}]{result.line()}[/{colour}]", highlight=False, soft_wrap=True)
    raise typer.Exit(1 if bad else 0)


@weights_app.command("import")
def weights_import(
    path: Path = typer.Argument(..., help="file to import"),
    name: str = typer.Option(None, "--name", help="name inside FACEDIT_WEIGHTS_DIR"),
    trust: bool = typer.Option(False, "--trust"),
) -> None:
    """Check a file, copy it into FACEDIT_WEIGHTS_DIR and record its sha256."""
    from shared.weights import import_file

    settings = get_settings()
    try:
        result, target = import_file(path, settings.weights_dir, name=name, trust=trust)
    except ValueError as exc:
        err_console.print(f"[red]{exc}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(f"imported {target} ({result.kind}; sha256 {result.sha256})")


# ---------------------------------------------------------------- data, train, eval

data_app = typer.Typer(help="Build datasets (suppressor training pairs).", no_args_is_help=True)
app.add_typer(data_app, name="data")
train_app = typer.Typer(help="Train models (the MAResU-Net suppressor).", no_args_is_help=True)
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
        _fail_usage(f"--source {source!r}: use one of {list(SOURCES)}")
    bundle = None
    if source == "gan":
        from shared.bundle import load_bundle

        settings = get_settings()
        try:
            bundle = load_bundle(models or settings.models, settings.weights_dir,
                                 device or settings.device)
        except FaceditError as exc:
            _fail_usage(exc.message)
        for note in bundle.notes:
            console.print(f"[yellow]note:[/yellow] {note}")
    try:
        total = len(list_images(src_dir)[:limit]) * per_image
    except ValueError as exc:
        _fail_usage(str(exc))
    with Progress(TextColumn("[bold]pairs"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("pairs", total=total)
        try:
            rows = write_pairs(src_dir, out_dir, source=source, size=size, per_image=per_image,
                               seed=seed, limit=limit, align=align, bundle=bundle,
                               on_pair=lambda row: progress.advance(task))
        except (ValueError, FaceditError) as exc:
            _fail_usage(getattr(exc, "message", None) or str(exc))
    skipped = total - len(rows)
    console.print(f"wrote {len(rows)} pairs to {out_dir} (manifest.jsonl, manifest.csv)"
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
        _fail_usage(getattr(exc, "message", None) or str(exc))
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
    console.print(f"step {result.step}/{steps} in {result.seconds:.1f} s; {metrics or 'no val'}; "
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
            _fail_usage(f"--ckpt {ckpt}: {exc}")
    if protocol == "blend":
        if network is None:
            _fail_usage("--protocol blend needs --ckpt CKPT")
        from shared.bundle import resolve_device

        try:
            report = evaluate.evaluate_blend(data, network, device=resolve_device(device or "cpu"),
                                             batch_size=batch_size, limit=limit,
                                             figure=out / "figure.png")
        except ValueError as exc:
            _fail_usage(str(exc))
    elif protocol == "paper":
        from shared.pipeline import config_with
        from shared.train.pairs import list_images

        edits = _parse_edits(edit)
        names = [s.strip() for s in suppressors.split(",") if s.strip()]
        if not names:
            _fail_usage("--suppressors: name at least one suppressor")
        try:
            images = list_images(data)[:first]
        except ValueError as exc:
            _fail_usage(str(exc))
        if not images:
            _fail_usage(f"{data}: no images")
        pipeline = _load_pipeline(models, device, edits, {"suppressor": "naive"})
        if network is not None:
            pipeline.bundle.suppressor_net = network.to(pipeline.bundle.device)
        try:
            pipeline = pipeline.with_config(config_with(pipeline.config, output_size=size))
        except InvalidEditRequest as exc:
            _fail_usage(exc.message)
        metric_dirs = [settings.weights_dir, settings.weights_dir / "metrics"]
        with Progress(TextColumn("[bold]evaluating"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("eval", total=len(images))
            report = evaluate.evaluate_paper(
                images, edits, pipeline, names, metric_dirs=metric_dirs, batch_size=batch_size,
                figure=out / "figure.png", on_batch=lambda n: progress.advance(task, n))
    else:
        _fail_usage(f"--protocol {protocol!r}: use paper or blend")
    path = report.write(out)
    console.print(report.markdown(), highlight=False, soft_wrap=True)
    console.print(f"wrote {path}, {out / 'report.json'}, {out / 'figure.png'}")


def _register_subcommands() -> None:
    from facedit import service_cli

    service_cli.register(app)


_register_subcommands()


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())
