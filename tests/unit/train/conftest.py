"""Tiny blend pairs (64², a few dev faces) shared by the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.train.pairs import write_pairs


@pytest.fixture(scope="session")
def tiny_pairs(tmp_path_factory: pytest.TempPathFactory, dev_faces: list[Path]) -> Path:
    out = tmp_path_factory.mktemp("pairs")
    write_pairs(dev_faces[0].parent, out, size=64, limit=8, seed=3)
    return out
