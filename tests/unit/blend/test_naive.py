from __future__ import annotations

import pytest
import torch

from shared.blend import naive_blend


def _batch(seed: int = 0, shape=(2, 3, 16, 20)):
    g = torch.Generator().manual_seed(seed)
    original = torch.rand(shape, generator=g)
    edited = torch.rand(shape, generator=g)
    mask = torch.rand((shape[0], 1, *shape[2:]), generator=g)
    return original, edited, mask


def test_naive_blend_is_the_convex_combination():
    original, edited, mask = _batch()
    out = naive_blend(original, edited, mask)
    torch.testing.assert_close(out, edited * mask + original * (1 - mask))
    assert out.shape == original.shape and out.dtype == original.dtype


def test_naive_blend_is_exact_where_the_mask_is_0_or_1():
    original, edited, mask = _batch(1)
    mask = (mask > 0.5).float()
    out = naive_blend(original, edited, mask)
    inside = mask.expand_as(out) > 0
    assert torch.equal(out[inside], edited[inside])
    assert torch.equal(out[~inside], original[~inside])


def test_naive_blend_accepts_bool_masks_and_any_channel_count():
    original, edited, mask = _batch(2, shape=(1, 5, 8, 8))
    out = naive_blend(original, edited, mask > 0.5)
    torch.testing.assert_close(out, torch.where(mask > 0.5, edited, original))


def test_naive_blend_rejects_bad_input():
    original, edited, mask = _batch(3)
    with pytest.raises(ValueError, match="edited.*shape"):
        naive_blend(original, edited[:, :2], mask)
    with pytest.raises(ValueError, match="mask.*shape"):
        naive_blend(original, edited, mask[:1])
    with pytest.raises(ValueError, match="mask.*\\[0, 1\\]"):
        naive_blend(original, edited, mask * 2)
    with pytest.raises(ValueError, match="original.*NaN"):
        naive_blend(original.clone().fill_(float("nan")), edited, mask)
