"""``facedit demo`` (``make demo``): the method shown on sample portraits, as a gallery.

What the demo does is :mod:`facedit.demo` (imported when the command runs: it needs numpy,
torch and the face detector).
"""

from __future__ import annotations

from pathlib import Path

import typer

from facedit.cli.options import MODELS_OPTION


def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", "-o", help="output folder"),
    models: str = MODELS_OPTION,
) -> None:
    """Show the method on sample portraits: seams removed by Poisson blending, in a gallery."""
    from facedit.demo import run_demo

    run_demo(out, models)
