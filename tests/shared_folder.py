"""Where the project's ``shared/`` folder (face photos, design key files) is: beside the checkout,
or — in a clone of a local checkout, e.g. ``git clone . /tmp/fresh`` — beside the checkout it
was cloned from."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


@cache
def shared_folder() -> Path:
    beside = REPO_ROOT.parent / "shared"
    if beside.is_dir():
        return beside
    try:
        origin = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "remote", "get-url", "origin"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return beside
    origin_path = Path(origin.removeprefix("file://"))
    if origin_path.is_absolute() and (origin_path.parent / "shared").is_dir():
        return origin_path.parent / "shared"
    return beside
