"""``facedit data blend-pairs``: suppressor training pairs (:mod:`shared.train.pairs`)."""

from __future__ import annotations

from pathlib import Path

import typer

from facedit.cli.loaders import load_models
from facedit.cli.options import DEVICE_OPTION, MODELS_HELP, typer_app
from facedit.console import console, fail_usage, say
from facedit.progress import counter
from shared.core.errors import FaceditError

app = typer_app("Build datasets (suppressor training pairs).")


@app.command("blend-pairs")
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
    device: str = DEVICE_OPTION,
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
    with counter(console, "pairs") as progress:
        task = progress.add_task("pairs", total=total)
        try:
            rows = write_pairs(src_dir, out_dir, source=source, size=size, per_image=per_image,
                               seed=seed, limit=limit, align=align, bundle=bundle,
                               on_pair=lambda row: progress.advance(task))
        except (ValueError, FaceditError) as exc:
            fail_usage(getattr(exc, "message", None) or str(exc))
    skipped = total - len(rows)
    say(f"wrote {len(rows)} pairs to {out_dir} (manifest.jsonl, manifest.csv)"
        + (f"; {skipped // per_image} image(s) skipped (see manifest.jsonl)" if skipped else ""))
