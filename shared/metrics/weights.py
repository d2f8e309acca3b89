"""Finding and reading the published weight files the learned metrics need.

No file is ever downloaded: a file is looked for, by its published name, in the directories
the caller passes and then in torch hub's download cache (``torch.hub.get_dir()/checkpoints``,
where torchvision and pytorch-fid put what they download). When it is nowhere,
:class:`MetricUnavailable` says which file is needed and where it is published.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from shared.core.errors import FaceditError


@dataclass(frozen=True)
class WeightFile:
    """A published weights file: its exact file name and where to get it."""

    name: str
    description: str
    published_at: str


class MetricUnavailable(FaceditError):
    """A learned metric cannot be computed because its weights file is missing."""

    code = "metric_unavailable"

    def __init__(self, missing: Sequence[WeightFile], searched: Sequence[Path]) -> None:
        places = ", ".join(str(p) for p in searched)
        needed = "; ".join(
            f"{f.name} ({f.description}), published at {f.published_at}" for f in missing
        )
        super().__init__(f"missing weights: {needed}; looked in {places}")
        self.missing = tuple(missing)
        self.searched = tuple(searched)


def hub_checkpoints_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_weights(weight_files: Sequence[WeightFile], search_dirs: Sequence[Path]) -> list[Path]:
    """For each file, the first ``dir/name`` that exists over ``search_dirs`` then the torch
    hub cache; raises MetricUnavailable naming every file that is nowhere."""
    places = [Path(d) for d in search_dirs] + [hub_checkpoints_dir()]
    found: list[Path] = []
    missing: list[WeightFile] = []
    for weight_file in weight_files:
        candidates = (d / weight_file.name for d in places)
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            missing.append(weight_file)
        else:
            found.append(path)
    if missing:
        raise MetricUnavailable(missing, places)
    return found


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A plain state dict from ``path``, tensors on the CPU (never unpickles arbitrary code)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"weights file {path}: expected a plain state dict of tensors")
    return state
