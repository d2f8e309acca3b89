from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.unit.blend.helpers import load_face


@pytest.fixture(scope="session")
def faces256(dev_faces: list[Path]) -> list[torch.Tensor]:
    """Six real aligned faces at 256² (1024² originals resized, and native 256² ones)."""
    big = [p for p in dev_faces if p.name.startswith("CelebAMask-HQ")][:3]
    picks = big + [dev_faces[20], dev_faces[60], dev_faces[100]]
    return [load_face(p, 256) for p in picks]


@pytest.fixture(scope="session")
def faces1024(dev_faces: list[Path]) -> list[torch.Tensor]:
    from PIL import Image

    native = []
    for p in dev_faces:
        with Image.open(p) as im:
            if im.size == (1024, 1024):
                native.append(p)
        if len(native) == 2:
            break
    return [load_face(p, 1024) for p in native]


@pytest.fixture(params=["compiled", "tensor"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a Poisson test with each implementation the default picks: ``compiled`` (CPU
    with numba) and ``tensor`` (what CUDA runs, and the CPU without numba — simulated by
    reporting numba as missing)."""
    import shared.blend.poisson as poisson

    if request.param == "tensor":
        monkeypatch.setattr(poisson, "numba_available", lambda: False)
    else:
        assert poisson.numba_available(), "numba is a core dependency: install facedit"
    return request.param
