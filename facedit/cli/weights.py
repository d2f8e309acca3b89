"""``facedit weights list|check|import``: the model weight files facedit can use."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from facedit.cli.options import typer_app
from facedit.console import cell, console, fail, say
from shared.core.config import get_settings
from shared.editing.weights import catalogue, check_file, import_file

app = typer_app("List, check and import model weight files.")

TRUST_HELP = "allow full unpickling (only for files you trust)"


@app.command("list")
def weights_list(
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
) -> None:
    """Every file facedit can use: role, format, found or missing, where it is published."""
    settings = get_settings()
    if as_json:
        for entry, found in catalogue(settings.weights_dir):
            print(json.dumps({"file": entry.name, "role": entry.role, "format": entry.format,
                              "found": str(found) if found else None,
                              "optional": entry.optional, "source": entry.source}))
        return
    table = Table(title=f"weights in {settings.weights_dir}")
    for column in ("file", "role", "format", "status", "where to get it"):
        table.add_column(column, overflow="fold")
    for entry, found in catalogue(settings.weights_dir):
        status = cell(f"found {found}", "green") if found else (
            cell("missing", "red") if not entry.optional else cell("missing (optional)", "yellow"))
        table.add_row(cell(entry.name), cell(entry.role), cell(entry.format), status,
                      cell(entry.source))
    console.print(table)
    say("Bring a file with `facedit weights import PATH`; it is checked and its sha256 "
        "recorded in manifest.json.")


@app.command("check")
def weights_check(
    paths: list[Path] = typer.Argument(..., help="files to check"),
    trust: bool = typer.Option(False, "--trust", help=TRUST_HELP),
) -> None:
    """Say what each file is and whether it is usable (exit 1 if any is not)."""
    bad = 0
    for path in paths:
        result = check_file(path, trust=trust)
        bad += not result.ok
        say(result.line(), "green" if result.ok else "red")
    raise typer.Exit(1 if bad else 0)


@app.command("import")
def weights_import(
    path: Path = typer.Argument(..., help="file to import"),
    name: str = typer.Option(None, "--name", help="name inside FACEDIT_WEIGHTS_DIR"),
    trust: bool = typer.Option(False, "--trust", help=TRUST_HELP),
) -> None:
    """Check a file, copy it into FACEDIT_WEIGHTS_DIR and record its sha256."""
    try:
        result, target = import_file(path, get_settings().weights_dir, name=name, trust=trust)
    except ValueError as exc:
        fail(str(exc))
    say(f"imported {target} ({result.kind}; sha256 {result.sha256})")
