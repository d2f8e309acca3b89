"""``facedit run`` / ``edit``: what is refused before any model loads, and the summary table.
(Whole runs with the toy models: tests/e2e/.)"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

import shared.editing.bundle as bundle_module
from facedit.cli import app
from facedit.cli.run import print_summary
from facedit.console import console


@pytest.fixture()
def no_models(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("models were loaded")

    monkeypatch.setattr(bundle_module, "load_bundle", refuse)


@pytest.mark.parametrize("arguments, message", [
    (["edit", "p.png", "-e", "smile=1"], "either --output FILE or --out DIR"),
    (["edit", "p.png", "-e", "smile=1", "-o", "x.png", "--out", "d"], "either --output FILE"),
    (["edit", "p.png", "-e", "smile=1", "-o", "x.gif"], "use a .png, .jpg or .webp file name"),
    (["edit", "p.png", "-e", "smile=1", "-o", "x.png", "--latent", "none.pt"], "no such file"),
    (["edit", "p.png", "-o", "x.png"], "at least one --edit"),
    (["run", "EMPTY", "-e", "smile=1", "--out", "o"], "no input images found"),
    (["run", "p.png", "-e", "smile=1", "--out", "o", "--suppressor", "blur"], "suppressor"),
    (["run", "p.png", "-e", "smile=1", "--out", "o", "--format", "gif"], "format"),
    (["run", "p.png", "-e", "smile=1", "--out", "o", "--quality", "0"], "--quality"),
])  # fmt: skip
def test_bad_arguments_exit_2_before_loading_models(
        tmp_path, monkeypatch, no_models, arguments, message) -> None:
    (tmp_path / "EMPTY").mkdir()
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, arguments, env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


def _record(name: str, status: str) -> SimpleNamespace:
    row = SimpleNamespace(input=name, error_code="invalid_image" if status == "failed" else None,
                          error="bad [bytes]", seconds=0.5, suppressor="poisson")
    return SimpleNamespace(row=row, status=status, skipped=status == "skipped")


def test_a_long_summary_shows_the_failures() -> None:
    records = [_record(f"ok{i}.png", "succeeded") for i in range(45)]
    records += [_record("broken[1].png", "failed"), _record("done.png", "skipped")]
    with console.capture() as captured:
        print_summary(records)
    text = captured.get()
    assert "broken[1].png" in text and "invalid_image: bad [bytes]" in text
    assert "ok0.png" not in text and "46 more rows in jobs.jsonl" in text
