"""Checkpoint I/O apart from the networks: read, check, count.

Every network file's loader reads its weights with :func:`read_checkpoint` (CPU,
``weights_only=True``: only tensors, dicts and plain values, never arbitrary pickles) and
checks them with :func:`check_state_dict` before a strict load, so a wrong file is refused
with the missing, unexpected and mis-shaped keys named.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn


def read_checkpoint(source: str | os.PathLike[str] | Mapping[str, Any], what: str) -> dict:
    """A checkpoint dict from a path (loaded with ``weights_only=True`` on CPU) or a loaded dict.

    ``what`` names the argument in error messages.
    """
    if isinstance(source, Mapping):
        return dict(source)
    if not isinstance(source, (str, os.PathLike)):
        raise ValueError(
            f"{what}: expected a path or a checkpoint dict, got {type(source).__name__}"
        )
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise ValueError(f"{what}: no such file: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for files that are not checkpoints
        raise ValueError(
            f"{what}: {path} is not a readable PyTorch checkpoint (or holds objects other than "
            f"tensors, dicts and plain values): {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"{what}: {path} holds a {type(checkpoint).__name__}, expected a dict")
    return dict(checkpoint)


def _shape(value: Any) -> str:
    return str(tuple(value.shape)) if isinstance(value, Tensor) else type(value).__name__


def check_state_dict(model: nn.Module, state_dict: Mapping[str, Any], what: str) -> None:
    """Raise ValueError naming the missing, unexpected and mis-shaped keys, if any."""
    expected = model.state_dict()
    problems = []
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k}: checkpoint {_shape(state_dict[k])} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict
        and (not isinstance(state_dict[k], Tensor) or state_dict[k].shape != v.shape)
    ]
    for label, items in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("mismatched shapes", mismatched),
    ):
        if items:
            shown = ", ".join(items[:8]) + (f", … ({len(items)} in all)" if len(items) > 8 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise ValueError(
            f"{what}: state dict does not fit {type(model).__name__}; " + "; ".join(problems)
        )


def count_parameters(module: nn.Module) -> int:
    """Number of parameter elements (works on the ``meta`` device)."""
    return sum(p.numel() for p in module.parameters())


__all__ = ["check_state_dict", "count_parameters", "read_checkpoint"]
