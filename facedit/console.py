"""Terminal output for the ``facedit`` command.

Rich parses ``[...]`` in strings as markup, which silently eats text such as ``[align]`` or
``[@START-END]``. Every message that carries text from outside the program (paths, errors,
hints) therefore goes through these helpers, which never parse markup: styles are applied to
whole :class:`rich.text.Text` pieces.
"""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.text import Text

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def say(message: str, style: str | None = None) -> None:
    """Print ``message`` as it is (no markup), optionally in one style."""
    console.print(Text(message, style=style or ""), soft_wrap=True)


def note(message: str) -> None:
    console.print(Text.assemble(("note: ", "yellow"), message), soft_wrap=True)


def warn(message: str) -> None:
    err_console.print(Text.assemble(("warning: ", "yellow"), message), soft_wrap=True)


def error(message: str) -> None:
    err_console.print(Text.assemble(("error: ", "red"), message), soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code`` (2: bad arguments)."""
    error(message)
    raise typer.Exit(code)


def fail_usage(message: str) -> NoReturn:
    fail(message, 2)


def cell(text: object, style: str | None = None) -> Text:
    """A table cell that shows ``text`` literally."""
    return Text("" if text is None else str(text), style=style or "")
