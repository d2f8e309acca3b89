"""The compiled (numba, CPU) and tensor (torch, CPU/CUDA) implementations of Poisson blending
give the same results, and the choice between them is validated."""

from __future__ import annotations

import pytest
import torch

import shared.blend.poisson as poisson
from shared.blend import poisson_blend
from shared.train.face_regions import region_mask


def _mask(size: int, region: str) -> torch.Tensor:
    return torch.from_numpy(region_mask(size, region)).float()[None, None]


@pytest.mark.parametrize("region", ["mouth", "lower_face"])
@pytest.mark.parametrize("gradients", ["source", "mixed"])
def test_compiled_and_tensor_agree(faces256, region, gradients):
    source, target = faces256[1], faces256[3]
    mask = _mask(256, region)
    for mode, tolerance in (("opencv", 0.01), ("exact", 0.25)):  # grey levels
        compiled = poisson_blend(source, target, mask, mode, gradients, implementation="compiled")
        tensor = poisson_blend(source, target, mask, mode, gradients, implementation="tensor")
        assert not torch.equal(compiled, target)
        assert float((compiled - tensor).abs().max()) * 255 < tolerance, mode


def test_compiled_accepts_permuted_float64_and_float16_inputs(faces256):
    # HWC arrays seen as CHW (what torch.from_numpy(image).permute gives) and other dtypes.
    source = faces256[0].permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    target = faces256[2]
    mask = _mask(256, "mouth")
    reference = {
        mode: poisson_blend(source, target, mask, mode, implementation="tensor")
        for mode in ("opencv", "exact")
    }
    for dtype in (torch.float64, torch.float16):
        src, tgt = source.to(dtype), target.to(dtype)
        for mode in ("opencv", "exact"):
            out = poisson_blend(src, tgt, mask, mode, implementation="compiled")
            assert out.dtype == dtype
            assert float((out.float() - reference[mode]).abs().max()) * 255 < 0.6, (dtype, mode)
            if mode == "exact":  # outside the mask the target comes back bit-exactly
                outside = (mask < 0.5).expand_as(out)
                assert torch.equal(out[outside], tgt[outside])


def test_unknown_implementation_is_a_value_error(faces256):
    source, target = faces256[0], faces256[1]
    with pytest.raises(ValueError, match="implementation"):
        poisson_blend(source, target, _mask(256, "mouth"), implementation="fast")  # type: ignore[arg-type]


def test_compiled_without_numba_is_a_value_error(faces256, monkeypatch):
    monkeypatch.setattr(poisson, "numba_available", lambda: False)
    source, target = faces256[0], faces256[1]
    with pytest.raises(ValueError, match="implementation: 'compiled'.*numba is not installed"):
        poisson_blend(source, target, _mask(256, "mouth"), implementation="compiled")
    # "auto" falls back to the tensor implementation.
    out = poisson_blend(source, target, _mask(256, "mouth"))
    assert not torch.equal(out, target)
