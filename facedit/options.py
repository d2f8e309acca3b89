"""Pipeline options from CLI flags, shared by `facedit run/edit` and `facedit submit`."""

from __future__ import annotations

from typing import Any


def pipeline_options(
    suppressor: str | None, activation: str | None, output_size: int | None, intermediates: bool
) -> dict[str, Any]:
    """Only the flags the user set, so the pipeline's own defaults apply to the rest."""
    options: dict[str, Any] = {}
    if suppressor:
        options["suppressor"] = suppressor
    if activation:
        options["activation"] = activation
    if output_size:
        options["output_size"] = output_size
    if intermediates:
        options["intermediates"] = True
    return options
