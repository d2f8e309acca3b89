"""``facedit run``, ``facedit edit`` and ``facedit attributes``: editing on this machine.

Both editing commands go through the embedded runtime (:mod:`facedit.embedded`): a SQLite job
store, local storage and the job runner the Celery workers use. ``run`` (and ``edit --out``)
names results after their inputs, resumes, and writes a before/after gallery.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from facedit.console import cell, console, fail, fail_usage, note, say, warn
from shared.core.config import get_settings
from shared.core.edits import EditSpec, check_request, parse_edit
from shared.core.errors import FaceditError, InvalidEditRequest

SUPPRESSOR_HELP = (
    "auto (default: the trained MAResU-Net when maresunet_suppressor.pt is installed, else "
    "exact Poisson) | maresunet | poisson | poisson-opencv | naive | sdea"
)
MODELS_HELP = "toy, auto (official weights in FACEDIT_WEIGHTS_DIR if present) or a weights folder"
EDIT_HELP = (
    "ATTRIBUTE=STRENGTH, e.g. smile=+2, pose=1.5@0-6 (W+ layers 0-5), or a sweep "
    "ATTRIBUTE=START:END:STEPS, e.g. smile=-3:3:7; repeat to combine edits"
)
ALIGN_HELP = (
    "auto: align photos whose landmarks are not those of an aligned crop and paste the edit "
    "back; always; never (take every input as an aligned crop)"
)
TOY_WARNING = "toy preset: untrained models, outputs are not meaningful edits"

# Options shared by `facedit run` and `facedit edit` (one declaration each).
EDIT_OPTION = typer.Option([], "--edit", "-e", help=EDIT_HELP)
MODELS_OPTION = typer.Option(None, "--models", help=MODELS_HELP)
SUPPRESSOR_OPTION = typer.Option(None, "--suppressor", help=SUPPRESSOR_HELP)
ACTIVATION_OPTION = typer.Option(None, "--activation", help="feature_diff | diffcam")
OUTPUT_SIZE_OPTION = typer.Option(None, "--output-size", help="square output side in pixels")
DEVICE_OPTION = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N")
ALIGN_OPTION = typer.Option("auto", "--align", help=ALIGN_HELP)
ALL_FACES_OPTION = typer.Option(False, "--all-faces", help="edit every face, not the largest")
DETECTOR_OPTION = typer.Option(
    "hog", "--detector", help="face detector for alignment: hog (fast) | cnn (finds more faces)"
)
INTERMEDIATES_OPTION = typer.Option(
    False, "--save-intermediates", help="also keep the mask, edited, naive and Poisson images"
)
LATENTS_OPTION = typer.Option(
    False, "--save-latents", help="keep each input's W+ code (<stem>.latent.pt) for --latent"
)
FORMAT_OPTION = typer.Option("png", "--format", help="png | jpg | webp")
QUALITY_OPTION = typer.Option(95, "--quality", min=1, max=100, help="JPEG/WebP quality")


def parse_edits(texts: list[str]) -> list[EditSpec]:
    if not texts:
        fail_usage("at least one --edit ATTRIBUTE=STRENGTH is required")
    try:
        edits = [parse_edit(t) for t in texts]
        check_request(edits)
    except InvalidEditRequest as exc:
        fail_usage(exc.message)
    return edits


def pipeline_options(
    suppressor: str | None, activation: str | None, output_size: int | None, intermediates: bool
) -> dict[str, Any]:
    """Only the flags the user set, so the pipeline's own defaults apply to the rest."""
    from facedit.options import pipeline_options as build
    from shared.core.contracts import PipelineConfig

    options = build(suppressor, activation, output_size, intermediates)
    try:
        PipelineConfig.from_options(options)
    except InvalidEditRequest as exc:
        fail_usage(exc.message)
    return options


def job_options(pipeline: dict[str, Any], **values: Any) -> dict[str, Any]:
    """``{"pipeline": …, format, quality, align, …}``, checked (exit 2 when wrong)."""
    from shared.core.contracts import JobOptions

    try:
        checked = JobOptions.from_options(values)
    except InvalidEditRequest as exc:
        fail_usage(exc.message)
    return {"pipeline": pipeline, **checked.to_options()}


def load_models(models: str | None, device: str | None) -> Any:
    """The model bundle (``--models``, default FACEDIT_MODELS), its notes printed."""
    from shared.editing.bundle import load_bundle

    settings = get_settings()
    try:
        bundle = load_bundle(models or settings.models, settings.weights_dir,
                             device or settings.device)
    except FaceditError as exc:
        fail_usage(exc.message)
    for line in bundle.notes:
        note(line)
    return bundle


def load_pipeline(models: str | None, device: str | None, edits: list[EditSpec],
                  options: dict[str, Any], batch_size: int | None = None) -> Any:
    from shared.core.contracts import NETWORK_SUPPRESSORS, PipelineConfig
    from shared.editing.pipeline import EditPipeline

    settings = get_settings()
    bundle = load_models(models, device)
    for spec in edits:
        try:
            bundle.check_attribute(spec.attribute)
        except InvalidEditRequest as exc:
            fail_usage(exc.message)
    config = PipelineConfig.from_options(options)
    if config.suppressor not in bundle.available_suppressors():
        fail_usage(
            f"--suppressor {config.suppressor} needs {NETWORK_SUPPRESSORS[config.suppressor]}, "
            "which is not installed: no trained MAResU-Net is published, so train one "
            "(`facedit train suppressor`) and bring it with `facedit weights import`, or use "
            "--suppressor auto (exact Poisson blending without it); see `facedit weights list`"
        )
    return EditPipeline(bundle, config, max_items=batch_size or settings.batch_size)


def embedded_runtime(storage_url: str) -> tuple[Any, Any]:
    """The migrated job store and the storage an in-process run writes to."""
    from shared.core.storage import open_storage
    from shared.jobs import JobStore

    settings = get_settings()
    store = JobStore(settings.database_url)
    store.migrate()
    return store, open_storage(storage_url, settings.s3_endpoint_url, settings.s3_region)


def run(
    inputs: list[Path] = typer.Argument(..., help="image files and/or folders of images"),
    edit: list[str] = EDIT_OPTION,
    out: Path = typer.Option(..., "--out", "-o", help="output folder (results, jobs.jsonl, "
                                                     "index.html)"),
    models: str = MODELS_OPTION,
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="images per GPU batch"),
    suppressor: str = SUPPRESSOR_OPTION,
    activation: str = ACTIVATION_OPTION,
    output_size: int = OUTPUT_SIZE_OPTION,
    save_intermediates: bool = INTERMEDIATES_OPTION,
    save_latents: bool = LATENTS_OPTION,
    output_format: str = FORMAT_OPTION,
    quality: int = QUALITY_OPTION,
    device: str = DEVICE_OPTION,
    align: str = ALIGN_OPTION,
    all_faces: bool = ALL_FACES_OPTION,
    detector: str = DETECTOR_OPTION,
    force: bool = typer.Option(False, "--force", help="edit every input again, even those an "
                                                      "earlier run with this --out finished"),
) -> None:
    """Edit a batch of photos on this machine: results named after their inputs, a gallery.

    Writes OUT/<input stem>.<edit>.<format> per result, OUT/jobs.jsonl and OUT/index.html.
    Running it again with the same --out skips inputs already done with the same bytes,
    edits and options.
    """
    from facedit.embedded import collect_inputs

    edits = parse_edits(edit)
    options = pipeline_options(suppressor, activation, output_size, save_intermediates)
    opts = job_options(options, align=align, all_faces=all_faces, detector=detector,
                       format=output_format, quality=quality, save_latents=save_latents)
    paths = collect_inputs(inputs)
    if not paths:
        fail_usage("no input images found")
    pipeline = load_pipeline(models, device, edits, options, batch_size)
    summary = edit_into_folder(paths, edits, out, pipeline, opts, batch_size, resume=not force)
    raise typer.Exit(0 if summary.count("failed") + summary.count("cancelled") == 0 else 1)


def edit_into_folder(paths: list[Path], edits: list[EditSpec], out: Path, pipeline: Any,
                     opts: dict[str, Any], batch_size: int | None, *, resume: bool = True,
                     title: str | None = None, gallery: bool = True) -> Any:
    """Run the jobs into ``out`` with a progress bar, then print the summary and the gallery."""
    from facedit.embedded import run_embedded
    from facedit.progress import RunProgress

    settings = get_settings()
    storage_url = os.environ.get("FACEDIT_STORAGE_URL") or f"file://{out.absolute()}"
    store, storage = embedded_runtime(storage_url)
    with RunProgress(console, len(paths)) as progress:
        summary = run_embedded(
            paths, edits, out, store=store, storage=storage, pipeline=pipeline,
            job_options=opts, batch_size=batch_size or settings.batch_size, settings=settings,
            resume=resume, on_progress=progress.on_progress,
            on_done=lambda r: progress.finished(r.row.job_id, r.path.name),
        )  # fmt: skip
    print_summary(summary.records)
    succeeded, failed = summary.count("succeeded"), summary.count("failed")
    line = f"{succeeded} succeeded, {failed} failed"
    if summary.skipped:
        line += f", {summary.skipped} skipped (already done in an earlier run with this --out)"
    say(f"{line}; results in {out}, log in {out / 'jobs.jsonl'}")
    if pipeline.bundle.preset == "toy":
        say(TOY_WARNING, "yellow")
    if gallery:
        index = write_run_gallery(out, summary, pipeline, title or f"facedit run: {out}")
        say(f"gallery: {index}")
    return summary


def write_run_gallery(out: Path, summary: Any, pipeline: Any, title: str) -> Path:
    from facedit.gallery import write_gallery
    from facedit.gallery_rows import rows_from_records

    notes = [TOY_WARNING] if pipeline.bundle.preset == "toy" else []
    return write_gallery(out, rows_from_records(summary.records, out), title=title, notes=notes)


def print_summary(records: list[Any]) -> None:
    table = Table(title="facedit run")
    table.add_column("input", overflow="fold")
    table.add_column("status")
    table.add_column("suppressor")
    table.add_column("seconds", justify="right")
    table.add_column("error", overflow="fold")
    shown = records if len(records) <= 40 else [
        r for r in records if r.status not in ("succeeded", "skipped")
    ][:40] or records[:10]
    for record in shown:
        row = record.row
        colour = {"succeeded": "green", "skipped": "cyan"}.get(record.status, "red")
        error = f"{row.error_code}: {row.error}" if row.error_code else ""
        seconds = "" if record.skipped or row.seconds is None else f"{row.seconds:.3f}"
        table.add_row(cell(row.input), cell(record.status, colour), cell(row.suppressor or ""),
                      cell(seconds), cell(error))
    if len(shown) < len(records):
        table.caption = f"{len(records) - len(shown)} more rows in jobs.jsonl"
    console.print(table)


def edit(
    image: Path = typer.Argument(..., help="the photo to edit (aligned crop or whole photo)"),
    edit: list[str] = EDIT_OPTION,
    output: Path = typer.Option(None, "--output", "-o", help="result file (.png, .jpg, .webp)"),
    out: Path = typer.Option(None, "--out", help="or: a folder for the results, jobs.jsonl and "
                                                 "index.html (as facedit run)"),
    models: str = MODELS_OPTION,
    suppressor: str = SUPPRESSOR_OPTION,
    activation: str = ACTIVATION_OPTION,
    output_size: int = OUTPUT_SIZE_OPTION,
    save_intermediates: bool = typer.Option(
        False, "--save-intermediates", help="also write OUT.mask.png, OUT.edited.png, …"),
    save_latents: bool = LATENTS_OPTION,
    latent: Path = typer.Option(None, "--latent", help="edit from this stored W+ code "
                                                       "(--save-latents) instead of inverting"),
    quality: int = QUALITY_OPTION,
    device: str = DEVICE_OPTION,
    align: str = ALIGN_OPTION,
    all_faces: bool = ALL_FACES_OPTION,
    detector: str = DETECTOR_OPTION,
) -> None:
    """Edit one photo; an unaligned photo is aligned and the edit pasted back into it."""
    if (output is None) == (out is None):
        fail_usage("give either --output FILE or --out DIR")
    edits = parse_edits(edit)
    fmt = "png"
    if output is not None:
        fmt = {"jpeg": "jpg"}.get(output.suffix.lower().lstrip("."), output.suffix.lower()[1:])
        if fmt not in {"png", "jpg", "webp"}:
            fail_usage(f"--output {output}: use a .png, .jpg or .webp file name")
    latent_uri = None
    if latent is not None:
        if not latent.is_file():
            fail_usage(f"--latent {latent}: no such file")
        latent_uri = latent.absolute().as_uri()
        _check_latent_source(latent, image)
    options = pipeline_options(suppressor, activation, output_size, save_intermediates)
    opts = job_options(options, align=align, all_faces=all_faces, detector=detector,
                       format=fmt, quality=quality, save_latents=save_latents, latent=latent_uri)
    pipeline = load_pipeline(models, device, edits, options, None)
    if out is not None:
        summary = edit_into_folder([image], edits, out, pipeline, opts, 1, resume=False,
                                   title=f"facedit edit: {image.name}")
        raise typer.Exit(0 if summary.count("succeeded") == 1 else 1)
    _edit_to_file(image, edits, output, pipeline, opts)


def _edit_to_file(image: Path, edits: list[EditSpec], output: Path, pipeline: Any,
                  opts: dict[str, Any]) -> None:
    """One photo to ``output`` (and ``output``'s siblings), keeping no other copies."""
    from facedit.embedded import run_embedded
    from shared.editing.latents import LATENT_SUFFIX

    settings = get_settings()
    with tempfile.TemporaryDirectory(prefix="facedit-edit-") as scratch:
        store, storage = embedded_runtime(f"file://{scratch}")
        summary = run_embedded(
            [image], edits, Path(scratch), store=store, storage=storage, pipeline=pipeline,
            job_options=opts, batch_size=1, settings=settings, resume=False,
        )  # fmt: skip
        row = summary.records[0].row
        if row.status != "succeeded":
            fail(f"{row.error_code}: {row.error}")
        output.parent.mkdir(parents=True, exist_ok=True)
        written = []
        sweep = len(row.results) > 1
        for result in row.results:
            target = output.with_name(f"{output.stem}.{result['label']}{output.suffix}") \
                if sweep else output
            target.write_bytes((Path(scratch) / result["file"]).read_bytes())
            written.append(target)
            for name, file in result["intermediates"].items():
                extra = target.with_name(f"{target.stem}.{name}.png")
                extra.write_bytes((Path(scratch) / file).read_bytes())
                written.append(extra)
        if row.latent:
            target = output.with_name(output.stem + LATENT_SUFFIX)
            target.write_bytes((Path(scratch) / row.latent).read_bytes())
            written.append(target)
    say(f"wrote {', '.join(str(p) for p in written)} ({row.seconds:.2f} s; job {row.job_id}; "
        f"suppressor {row.suppressor})")
    if pipeline.bundle.preset == "toy":
        say(TOY_WARNING, "yellow")


def _check_latent_source(latent: Path, image: Path) -> None:
    """Warn when the latent was saved for other image bytes (the edit still runs)."""
    from facedit.embedded import file_sha256
    from shared.editing.latents import InvalidLatent, decode_latent

    try:
        stored = decode_latent(latent.read_bytes(), str(latent))
    except InvalidLatent as exc:
        fail_usage(exc.message)
    sha = file_sha256(image, 1 << 40)
    if stored.input_sha256 and sha and stored.input_sha256 != sha:
        warn(f"{latent} was saved from other image bytes than {image}; editing anyway")


def attributes(models: str = MODELS_OPTION) -> None:
    """List the edits available with the current weights."""
    from shared.editing.bundle import load_bundle

    settings = get_settings()
    bundle = load_bundle(models or settings.models, settings.weights_dir, "cpu")
    table = Table(title=f"attributes ({bundle.preset})")
    for column in ("name", "kind", "layers", "strength range", "source"):
        table.add_column(column)
    for info in bundle.directions.available():
        table.add_row(
            cell(info.name), cell(info.kind),
            cell(f"{info.default_layers[0]}-{info.default_layers[1]}" if info.default_layers
                 else "all"),
            cell(f"{info.strength_range[0]:g} … {info.strength_range[1]:g}"),
            cell(info.file or ""),
        )  # fmt: skip
    console.print(table)
    say(f"suppressor=auto runs {bundle.auto_suppressor()} with these models")


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(edit)
    app.command()(attributes)
