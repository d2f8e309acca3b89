"""``facedit train suppressor``: train MAResU-Net (:mod:`shared.train.suppressor`)."""

from __future__ import annotations

from pathlib import Path

import typer

from facedit.cli.options import DEVICE_HELP, typer_app
from facedit.console import fail_usage, say
from shared.core.errors import FaceditError

app = typer_app("Train models (the MAResU-Net suppressor).")


@app.command("suppressor")
def train_suppressor_command(
    pairs: Path = typer.Option(..., "--pairs", help="folder written by `facedit data blend-pairs`"),
    out: Path = typer.Option(..., "--out", help="checkpoint file (log .log.csv, plot .curves.png)"),
    size: int = typer.Option(256, "--size", help="training resolution (multiple of 32)"),
    steps: int = typer.Option(1000, "--steps", min=1),
    batch: int = typer.Option(4, "--batch", min=1),
    lr: float = typer.Option(1e-4, "--lr", help="peak learning rate (AdamW, cosine)"),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
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
