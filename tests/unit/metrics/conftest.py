"""Weight files in the official layouts, filled with seeded random values, saved under the
official names in a temporary weights directory."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tests.unit.metrics.official_layouts import (
    ALEXNET_CLASSIFIER,
    ALEXNET_TRUNK,
    LPIPS_ALEX_V01_FILE,
    Shape,
    fid_inception_file,
)


def random_state(layout: dict[str, Shape], seed: int) -> dict[str, torch.Tensor]:
    """He-scaled weights (so activations neither vanish nor explode through Inception),
    BatchNorm statistics near identity, non-negative LPIPS heads (as in the real file)."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in layout.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=generator)
        elif key.endswith(("running_mean", ".bias")):
            state[key] = 0.1 * torch.randn(shape, generator=generator)
        elif key.endswith("bn.weight"):
            state[key] = 0.5 + torch.rand(shape, generator=generator)
        elif key.startswith("lin"):
            state[key] = torch.rand(shape, generator=generator)
        else:
            fan_in = math.prod(shape[1:])
            state[key] = torch.randn(shape, generator=generator) * math.sqrt(2.0 / fan_in)
    return state


def alexnet_file_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """The whole torchvision AlexNet file; the classifier (58 M values the metric never uses)
    is stored as broadcast views of one number so the file stays a few MB."""
    state = random_state(ALEXNET_TRUNK, seed)
    for key, shape in ALEXNET_CLASSIFIER.items():
        state[key] = torch.zeros(1).expand(shape)
    return state


@pytest.fixture(scope="session")
def metric_weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("metric-weights")
    torch.save(alexnet_file_state(), directory / "alexnet-owt-7be5be79.pth")
    torch.save(random_state(LPIPS_ALEX_V01_FILE, 1), directory / "alex.pth")
    torch.save(
        random_state(fid_inception_file(), 2),
        directory / "pt_inception-2015-12-05-6726825d.pth",
    )
    return directory


@pytest.fixture(autouse=True)
def empty_torch_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point torch hub at an empty folder so weights cached on this machine never leak in."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
