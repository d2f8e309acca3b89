"""Options shared by several commands: declared once, their help, defaults and ranges taken from
shared/core/contracts.py, and their values checked with exit code 2."""

from __future__ import annotations

import inspect

import pytest
import typer

from facedit.cli import options, run, service
from shared.core.contracts import OutputOptions, PipelineConfig

SHARED = {
    "--edit": options.EDIT_OPTION, "--suppressor": options.SUPPRESSOR_OPTION,
    "--activation": options.ACTIVATION_OPTION, "--output-size": options.OUTPUT_SIZE_OPTION,
    "--save-intermediates": options.INTERMEDIATES_OPTION,
    "--save-latents": options.LATENTS_OPTION, "--quality": options.QUALITY_OPTION,
    "--align": options.ALIGN_OPTION, "--all-faces": options.ALL_FACES_OPTION,
    "--detector": options.DETECTOR_OPTION,
}  # fmt: skip


def _declared(command) -> dict[str, typer.models.OptionInfo]:
    found = {}
    for parameter in inspect.signature(command).parameters.values():
        info = parameter.default
        if isinstance(info, typer.models.OptionInfo):
            found[info.param_decls[0]] = info
    return found


@pytest.mark.parametrize("command", [run.run, run.edit, service.submit],
                         ids=["run", "edit", "submit"])
def test_run_edit_and_submit_share_one_declaration_per_option(command) -> None:
    declared = _declared(command)
    for flag, info in SHARED.items():
        assert declared[flag] is info, flag


@pytest.mark.parametrize("model, name, info", [
    (PipelineConfig, "suppressor", options.SUPPRESSOR_OPTION),
    (PipelineConfig, "activation", options.ACTIVATION_OPTION),
    (PipelineConfig, "output_size", options.OUTPUT_SIZE_OPTION),
    (PipelineConfig, "intermediates", options.INTERMEDIATES_OPTION),
    (OutputOptions, "format", options.FORMAT_OPTION),
    (OutputOptions, "quality", options.QUALITY_OPTION),
    (OutputOptions, "align", options.ALIGN_OPTION),
    (OutputOptions, "all_faces", options.ALL_FACES_OPTION),
    (OutputOptions, "detector", options.DETECTOR_OPTION),
    (OutputOptions, "save_latents", options.LATENTS_OPTION),
])  # fmt: skip
def test_job_option_help_comes_from_the_contracts(model, name, info) -> None:
    assert info.help == model.help(name) != ""


def test_output_defaults_and_range_come_from_the_contracts() -> None:
    for name, info in (("format", options.FORMAT_OPTION), ("align", options.ALIGN_OPTION),
                       ("detector", options.DETECTOR_OPTION), ("quality", options.QUALITY_OPTION)):
        assert info.default == OutputOptions.model_fields[name].default
    assert (options.QUALITY_OPTION.min, options.QUALITY_OPTION.max) == (1, 100)
    # pipeline flags stay unset unless given, so the pipeline's defaults apply
    assert options.SUPPRESSOR_OPTION.default is None and options.OUTPUT_SIZE_OPTION.max is None


def test_only_the_flags_given_reach_the_pipeline_options() -> None:
    assert options.pipeline_options(None, None, None, False) == {}
    assert options.pipeline_options("naive", "diffcam", 128, True) == {
        "suppressor": "naive", "activation": "diffcam", "output_size": 128, "intermediates": True}


@pytest.mark.parametrize("call", [
    lambda: options.parse_edits([]),
    lambda: options.parse_edits(["smile=+1", "age=-1:1:3", "pose=-1:1:3"]),
    lambda: options.parse_edits(["smile"]),
    lambda: options.checked_pipeline_options("blur", None, None, False),
    lambda: options.checked_pipeline_options(None, None, 8, False),
    lambda: options.job_options(None, format="gif"),
    lambda: options.job_options({}, align="sometimes"),
])  # fmt: skip
def test_bad_values_exit_2(call) -> None:
    with pytest.raises(typer.Exit) as exit_info:
        call()
    assert exit_info.value.exit_code == 2


def test_job_options_with_and_without_the_pipeline() -> None:
    alone = options.job_options(None, format="jpeg", quality=90)
    assert alone["format"] == "jpg" and alone["quality"] == 90 and "pipeline" not in alone
    assert options.job_options({"suppressor": "naive"})["pipeline"] == {"suppressor": "naive"}
