"""Fixtures for the MAResU-Net / Diff-CAM / direction tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests import model_layouts


@pytest.fixture(scope="session")
def official_keys() -> Callable[[str], dict[str, list[int]]]:
    """``official_keys("maresunet_3out.json")`` → {key: shape} of an official state dict."""
    return model_layouts.official_keys
