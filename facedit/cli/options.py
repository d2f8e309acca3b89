"""What several commands share: the Typer app factory, option declarations, help texts, and
turning option values into checked edits and job options (exit 2 when wrong).

The job and pipeline options (``--suppressor``, ``--align``, ``--format`` …) take their help
text, default and range from :mod:`shared.core.contracts`, where the API and the job runner
read them too; an option used by one command only is declared with that command.
"""

from __future__ import annotations

from typing import Any

import typer

from facedit.console import fail_usage
from shared.core.contracts import JobOptions, OutputOptions, PipelineConfig
from shared.core.edits import EditSpec, check_request, parse_edit
from shared.core.errors import InvalidEditRequest


def typer_app(help: str, **settings: Any) -> typer.Typer:
    """A command group whose help is shown as written (no ``[...]`` taken for Rich markup)."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None, **settings)


# ---------------------------------------------------------------- help texts

MODELS_HELP = "toy, auto (official weights in FACEDIT_WEIGHTS_DIR if present) or a weights folder"
DEVICE_HELP = "auto | cpu | cuda | cuda:N"
EDIT_HELP = (
    "ATTRIBUTE=STRENGTH[@START-END], e.g. smile=+2, pose=1.5@0-6 (W+ layers 0-5), or a sweep "
    "ATTRIBUTE=START:END:STEPS, e.g. smile=-3:3:7; repeat to combine edits"
)

# ---------------------------------------------------------------- options


def _contract_option(model: type[Any], name: str, flag: str, *, default: Any = ...,
                     ranged: bool = False) -> Any:
    """``flag`` for option ``name`` of ``model``, with its help and default from there (and
    its range, checked by Typer, when ``ranged``)."""
    field = model.model_fields[name]
    bounds: dict[str, Any] = {}
    for item in field.metadata if ranged else ():  # Field(ge=…, le=…) -> typer's min/max
        if getattr(item, "ge", None) is not None:
            bounds["min"] = item.ge
        if getattr(item, "le", None) is not None:
            bounds["max"] = item.le
    return typer.Option(field.default if default is ... else default, flag,
                        help=field.description, **bounds)


MODELS_OPTION = typer.Option(None, "--models", help=MODELS_HELP)
DEVICE_OPTION = typer.Option(None, "--device", help=DEVICE_HELP)
EDIT_OPTION = typer.Option([], "--edit", "-e", help=EDIT_HELP)

# Pipeline options default to unset, so that only the flags given reach the job (the
# pipeline's own defaults apply to the rest; see pipeline_options).
SUPPRESSOR_OPTION = _contract_option(PipelineConfig, "suppressor", "--suppressor", default=None)
ACTIVATION_OPTION = _contract_option(PipelineConfig, "activation", "--activation", default=None)
OUTPUT_SIZE_OPTION = _contract_option(PipelineConfig, "output_size", "--output-size")
INTERMEDIATES_OPTION = _contract_option(PipelineConfig, "intermediates", "--save-intermediates")

FORMAT_OPTION = _contract_option(OutputOptions, "format", "--format")
QUALITY_OPTION = _contract_option(OutputOptions, "quality", "--quality", ranged=True)
ALIGN_OPTION = _contract_option(OutputOptions, "align", "--align")
ALL_FACES_OPTION = _contract_option(OutputOptions, "all_faces", "--all-faces")
DETECTOR_OPTION = _contract_option(OutputOptions, "detector", "--detector")
LATENTS_OPTION = _contract_option(OutputOptions, "save_latents", "--save-latents")

# ---------------------------------------------------------------- checked values


def parse_edits(texts: list[str]) -> list[EditSpec]:
    """The ``--edit`` values as one request (a sweep at most), or exit 2."""
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
    """Only the flags the user set, so the pipeline's own defaults apply to the rest.

    Not checked: ``facedit submit`` leaves that to the API (see checked_pipeline_options).
    """
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


def checked_pipeline_options(
    suppressor: str | None, activation: str | None, output_size: int | None, intermediates: bool
) -> dict[str, Any]:
    """:func:`pipeline_options`, checked against :class:`PipelineConfig` (exit 2 when wrong)."""
    options = pipeline_options(suppressor, activation, output_size, intermediates)
    try:
        PipelineConfig.from_options(options)
    except InvalidEditRequest as exc:
        fail_usage(exc.message)
    return options


def job_options(pipeline: dict[str, Any] | None, **values: Any) -> dict[str, Any]:
    """``{"pipeline": …, format, quality, align, …}``, checked (exit 2 when wrong).

    With ``pipeline=None``: the job options alone (the fields of an API request beside
    ``options``).
    """
    try:
        checked = JobOptions.from_options(values).to_options()
    except InvalidEditRequest as exc:
        fail_usage(exc.message)
    return checked if pipeline is None else {"pipeline": pipeline, **checked}
