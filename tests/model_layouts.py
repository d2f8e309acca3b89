"""Official state-dict layouts (``../shared/design/keys``) and helpers to compare with them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from tests.shared_folder import shared_folder


def keys_dir() -> Path:
    env = os.environ.get("FACEDIT_DESIGN_KEYS_DIR")
    return Path(env) if env else shared_folder() / "design" / "keys"


def official_keys(name: str) -> dict[str, list[int]]:
    """``official_keys("maresunet_3out.json")`` → {key: shape} of an official state dict."""
    path = keys_dir() / name
    if not path.is_file():
        raise RuntimeError(
            f"{path} not found; set FACEDIT_DESIGN_KEYS_DIR to the folder of the key files"
        )
    return json.loads(path.read_text())["keys"]


def official_layout(name: str) -> list[tuple[str, tuple[int, ...]]]:
    """The official (key, shape) list, in the official order."""
    return [(k, tuple(v)) for k, v in official_keys(name).items()]


def layout(module: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in module.state_dict().items()]
