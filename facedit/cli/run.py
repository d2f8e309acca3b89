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

from facedit.cli.loaders import embedded_runtime, load_pipeline
from facedit.cli.options import (
    ACTIVATION_OPTION,
    ALIGN_OPTION,
    ALL_FACES_OPTION,
    DETECTOR_OPTION,
    DEVICE_OPTION,
    EDIT_OPTION,
    FORMAT_OPTION,
    INTERMEDIATES_OPTION,
    LATENTS_OPTION,
    MODELS_OPTION,
    OUTPUT_SIZE_OPTION,
    QUALITY_OPTION,
    SUPPRESSOR_OPTION,
    checked_pipeline_options,
    job_options,
    parse_edits,
)
from facedit.console import cell, console, fail, fail_usage, say, warn
from facedit.embedded import collect_inputs, file_sha256, run_embedded
from facedit.progress import RunProgress
from shared.core.config import get_settings
from shared.core.edits import EditSpec

TOY_WARNING = "toy preset: untrained models, outputs are not meaningful edits"
SUMMARY_ROWS = 40  # a longer run shows its failures (at most this many) in the summary table


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
    edits = parse_edits(edit)
    options = checked_pipeline_options(suppressor, activation, output_size, save_intermediates)
    opts = job_options(options, align=align, all_faces=all_faces, detector=detector,
                       format=output_format, quality=quality, save_latents=save_latents)
    paths = collect_inputs(inputs)
    if not paths:
        fail_usage("no input images found")
    pipeline = load_pipeline(models, device, edits, options, batch_size)
    summary = edit_into_folder(paths, edits, out, pipeline, opts, batch_size, resume=not force)
    raise typer.Exit(0 if summary.count("failed") + summary.count("cancelled") == 0 else 1)


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
    save_intermediates: bool = INTERMEDIATES_OPTION,
    save_latents: bool = LATENTS_OPTION,
    latent: Path = typer.Option(None, "--latent", help="edit from this stored W+ code "
                                                       "(--save-latents) instead of inverting"),
    quality: int = QUALITY_OPTION,
    device: str = DEVICE_OPTION,
    align: str = ALIGN_OPTION,
    all_faces: bool = ALL_FACES_OPTION,
    detector: str = DETECTOR_OPTION,
) -> None:
    """Edit one photo; an unaligned photo is aligned and the edit pasted back into it.

    With --output FILE the result is FILE (FILE.mask.png, FILE.edited.png … beside it with
    --save-intermediates); with --out DIR, as facedit run.
    """
    if (output is None) == (out is None):
        fail_usage("give either --output FILE or --out DIR")
    edits = parse_edits(edit)
    fmt = "png" if output is None else _file_format(output)
    latent_uri = None
    if latent is not None:
        if not latent.is_file():
            fail_usage(f"--latent {latent}: no such file")
        latent_uri = latent.absolute().as_uri()
        _check_latent_source(latent, image)
    options = checked_pipeline_options(suppressor, activation, output_size, save_intermediates)
    opts = job_options(options, align=align, all_faces=all_faces, detector=detector,
                       format=fmt, quality=quality, save_latents=save_latents, latent=latent_uri)
    pipeline = load_pipeline(models, device, edits, options, None)
    if out is not None:
        summary = edit_into_folder([image], edits, out, pipeline, opts, 1, resume=False,
                                   title=f"facedit edit: {image.name}")
        raise typer.Exit(0 if summary.count("succeeded") == 1 else 1)
    _edit_to_file(image, edits, output, pipeline, opts)


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


# ---------------------------------------------------------------- into a folder (run, edit --out)


def edit_into_folder(paths: list[Path], edits: list[EditSpec], out: Path, pipeline: Any,
                     opts: dict[str, Any], batch_size: int | None, *, resume: bool = True,
                     title: str | None = None, gallery: bool = True) -> Any:
    """Run the jobs into ``out`` with a progress bar, then print the summary and the gallery."""
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
    shown = records if len(records) <= SUMMARY_ROWS else [
        r for r in records if r.status not in ("succeeded", "skipped")
    ][:SUMMARY_ROWS] or records[:10]
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


# ---------------------------------------------------------------- one file (edit --output)


def _file_format(output: Path) -> str:
    """The result format named by ``--output``'s suffix, or exit 2."""
    fmt = {"jpeg": "jpg"}.get(output.suffix.lower().lstrip("."), output.suffix.lower()[1:])
    if fmt not in {"png", "jpg", "webp"}:
        fail_usage(f"--output {output}: use a .png, .jpg or .webp file name")
    return fmt


def _edit_to_file(image: Path, edits: list[EditSpec], output: Path, pipeline: Any,
                  opts: dict[str, Any]) -> None:
    """One photo to ``output`` (and ``output``'s siblings), keeping nothing else: its job
    runs in a scratch job store and storage, removed when it ends."""
    from shared.core.contracts import LATENT_SUFFIX

    settings = get_settings()
    with tempfile.TemporaryDirectory(prefix="facedit-edit-") as scratch:
        store, storage = embedded_runtime(f"file://{scratch}/storage",
                                          f"sqlite:///{scratch}/jobs.db")
        try:
            summary = run_embedded(
                [image], edits, Path(scratch), store=store, storage=storage, pipeline=pipeline,
                job_options=opts, batch_size=1, settings=settings, resume=False,
            )  # fmt: skip
        finally:
            store.close()
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
    from shared.editing.latents import InvalidLatent, decode_latent

    try:
        stored = decode_latent(latent.read_bytes(), str(latent))
    except InvalidLatent as exc:
        fail_usage(exc.message)
    sha = file_sha256(image, 1 << 40)
    if stored.input_sha256 and sha and stored.input_sha256 != sha:
        warn(f"{latent} was saved from other image bytes than {image}; editing anyway")
