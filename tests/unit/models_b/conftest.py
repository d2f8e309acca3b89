"""Fixtures for the MAResU-Net / Diff-CAM / direction tests."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]


def _keys_dir() -> Path:
    env = os.environ.get("FACEDIT_DESIGN_KEYS_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "design" / "keys"


@pytest.fixture(scope="session")
def official_keys() -> Callable[[str], dict[str, list[int]]]:
    """``official_keys("maresunet_3out.json")`` → {key: shape} of an official state dict."""

    def load(name: str) -> dict[str, list[int]]:
        path = _keys_dir() / name
        if not path.is_file():
            raise RuntimeError(
                f"{path} not found; set FACEDIT_DESIGN_KEYS_DIR to the folder of the key files"
            )
        return json.loads(path.read_text())["keys"]

    return load
