"""The command tree: every group registered once, every help rendering as written, and
``import facedit.cli`` staying light (the package docstring's import rule)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from facedit.cli import app

COMMANDS = {
    "run": None, "edit": None, "attributes": None, "demo": None, "eval": None,
    "api": None, "worker": None, "submit": None, "status": None, "gc": None,
    "weights": {"list", "check", "import"},
    "data": {"blend-pairs"},
    "train": {"suppressor"},
    "keys": {"create", "list", "revoke"},
    "db": {"upgrade"},
}  # fmt: skip


def _context(command):
    return typer.Context(command)


def _commands() -> list[tuple[list[str], object]]:
    """(path, click command) of every command and group below the root."""
    found = []

    def walk(command, path):
        found.append((path, command))
        if hasattr(command, "list_commands"):
            for name in command.list_commands(_context(command)):
                walk(command.get_command(_context(command), name), [*path, name])

    walk(get_command(app), [])
    return found[1:]


def _flat(text: str) -> str:
    """``text`` without line breaks (help is wrapped at spaces and after hyphens)."""
    return re.sub(r"-\s+", "-", " ".join(text.split()))


def test_every_group_and_command_is_registered() -> None:
    root = get_command(app)
    assert set(root.list_commands(_context(root))) == set(COMMANDS)
    for name, subcommands in COMMANDS.items():
        command = root.get_command(_context(root), name)
        if subcommands is None:
            assert not hasattr(command, "list_commands"), name
        else:
            assert set(command.list_commands(_context(command))) == subcommands, name


def test_no_app_takes_help_text_for_markup() -> None:
    groups = [app] + [info.typer_instance for info in app.registered_groups]
    assert len(groups) == 1 + sum(1 for v in COMMANDS.values() if v is not None)
    for group in groups:
        assert group.rich_markup_mode is None
        assert group.info.no_args_is_help


@pytest.mark.parametrize("path", [p for p, _ in _commands()], ids=" ".join)
def test_help_renders_every_option_help_as_written(path: list[str]) -> None:
    command = dict((tuple(p), c) for p, c in _commands())[tuple(path)]
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    shown = _flat(result.output)
    assert command.help is None or _flat(command.help.split("\n\n")[0]) in shown
    for param in command.params:
        text = getattr(param, "help", None)
        if text:
            assert _flat(text) in shown, (param.name, text)


def test_brackets_in_help_survive() -> None:
    for command in ("run", "edit", "submit"):
        shown = _flat(CliRunner().invoke(app, [command, "--help"]).output)
        assert "ATTRIBUTE=STRENGTH[@START-END]" in shown, command
        assert "ATTRIBUTE=START:END:STEPS" in shown and "pose=1.5@0-6" in shown
    assert "[default: 95; 1<=x<=100]" in _flat(CliRunner().invoke(app, ["run", "--help"]).output)


def test_importing_the_command_loads_no_heavy_library() -> None:
    heavy = ["torch", "numpy", "PIL", "cv2", "sqlalchemy", "httpx", "celery", "uvicorn",
             "fastapi", "skimage", "workers", "api", "shared.jobs", "facedit.gallery"]
    code = ("import sys, facedit.cli; "
            f"print(' '.join(m for m in {heavy!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.split()
    assert loaded == []
