"""Shared test fixtures. Real services come from tests/fixtures/services.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.shared_folder import shared_folder

pytest_plugins = ["tests.fixtures.services"]


def _faces_root() -> Path:
    env = os.environ.get("FACEDIT_TEST_FACES_DIR")
    return Path(env) if env else shared_folder() / "data" / "faces"


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """The research-only face photos (``../shared/data/faces``); read by path, never copied."""
    root = _faces_root()
    if not (root / "dev").is_dir():
        raise RuntimeError(
            f"face photos not found at {root}; set FACEDIT_TEST_FACES_DIR to the folder "
            "holding dev/ and photos/"
        )
    return root


@pytest.fixture(scope="session")
def dev_faces(faces_dir: Path) -> list[Path]:
    return sorted(p for p in (faces_dir / "dev").iterdir() if p.suffix.lower() in {".jpg", ".png"})


@pytest.fixture(scope="session")
def faces_256(dev_faces: list[Path]) -> list[Path]:
    """The 256² development faces (aligned crops: what the toy pipeline works at), at least 8."""
    from PIL import Image

    found = []
    for path in dev_faces:
        with Image.open(path) as image:
            if image.size == (256, 256):
                found.append(path)
    assert len(found) >= 8, f"expected at least 8 faces at 256², found {len(found)}"
    return found
