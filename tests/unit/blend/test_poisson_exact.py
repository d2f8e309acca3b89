"""mode="exact": Pérez's equation on the mask, checked against a sparse direct solve."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from shared.blend import poisson_blend, poisson_blend_with_stats
from shared.train.face_regions import blob_mask, region_mask
from tests.unit.blend.helpers import perez_reference

# Every test runs with the compiled (CPU) and the tensor (CUDA, no-numba) implementation.
pytestmark = pytest.mark.usefixtures("implementation")


def _mask(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]


def _max_error_grey(out: torch.Tensor, reference: np.ndarray) -> float:
    return float(np.abs(out[0].double().numpy() - reference).max() * 255)


def _assert_outside_untouched(out, target, mask):
    outside = (mask < 0.5).expand_as(out)
    assert torch.equal(out[outside], target[outside])


@pytest.mark.parametrize("region", ["mouth", "eyes", "lower_face"])
@pytest.mark.parametrize("gradients", ["source", "mixed"])
def test_matches_sparse_direct_solve_on_faces(faces256, region, gradients):
    source, target = faces256[0], faces256[2]
    mask = _mask(region_mask(256, region))
    out, stats = poisson_blend_with_stats(source, target, mask, gradients=gradients)
    reference = perez_reference(source, target, mask[0, 0].numpy() >= 0.5, gradients == "mixed")
    assert _max_error_grey(out, reference) < 0.25
    _assert_outside_untouched(out, target, mask)
    assert 1 <= stats.iterations[0] <= 20 and stats.relative_residuals[0] <= 1e-4


def test_matches_sparse_direct_solve_at_1024(faces1024):
    source, target = faces1024
    mask = _mask(region_mask(1024, "lower_face"))
    out, stats = poisson_blend_with_stats(source, target, mask)
    reference = perez_reference(source, target, mask[0, 0].numpy() >= 0.5)
    assert _max_error_grey(out, reference) < 0.25
    _assert_outside_untouched(out, target, mask)
    assert stats.iterations[0] <= 20


def test_soft_irregular_mask_is_binarised_at_one_half(faces256):
    source, target = faces256[1], faces256[3]
    soft = _mask(blob_mask(256, "nose", rng=3))
    out = poisson_blend(source, target, soft)
    assert torch.equal(out, poisson_blend(source, target, soft >= 0.5))
    reference = perez_reference(source, target, soft[0, 0].numpy() >= 0.5)
    assert _max_error_grey(out, reference) < 0.25
    _assert_outside_untouched(out, target, soft)
    # 0.5 itself counts as inside
    half = soft.clone()
    half[soft >= 0.5] = 0.5
    assert torch.equal(poisson_blend(source, target, half), out)


def test_mask_touching_the_image_border_uses_zero_flux_there(faces256):
    source, target = faces256[4], faces256[5]
    yy, xx = np.mgrid[:256, :256]
    inside = (yy > 170) | (xx < 12) | ((yy < 30) & (xx > 200))
    out = poisson_blend(source, target, _mask(inside))
    assert _max_error_grey(out, perez_reference(source, target, inside)) < 0.25
    _assert_outside_untouched(out, target, _mask(inside))


def test_several_components_thin_lines_and_single_pixels(faces256):
    source, target = faces256[0], faces256[5]
    inside = (region_mask(256, "eyes") > 0.5) | (region_mask(256, "mouth") > 0.5)
    inside[10, 10] = inside[50, 200] = True  # isolated pixels
    inside[100:180, 30] = True  # a 1-px line
    inside[220:223, 40:240] = True  # a thin strip
    for gradients in ("source", "mixed"):
        out = poisson_blend(source, target, _mask(inside), gradients=gradients)
        reference = perez_reference(source, target, inside, gradients == "mixed")
        assert _max_error_grey(out, reference) < 0.25


def test_random_blobby_masks(faces256):
    source, target = faces256[2], faces256[4]
    for seed, region in enumerate(("face", "brows", "cheeks", "chin")):
        inside = blob_mask(256, region, rng=seed) >= 0.5
        out = poisson_blend(source, target, _mask(inside))
        assert _max_error_grey(out, perez_reference(source, target, inside)) < 0.25


@pytest.mark.parametrize("channels", [1, 4])
def test_any_channel_count(faces256, channels):
    source = torch.cat([faces256[0], faces256[1]], 1)[:, :channels]
    target = torch.cat([faces256[2], faces256[3]], 1)[:, :channels]
    inside = region_mask(256, "lower_face") > 0.5
    out = poisson_blend(source, target, _mask(inside))
    assert out.shape == source.shape
    assert _max_error_grey(out, perez_reference(source, target, inside)) < 0.25


def test_empty_mask_returns_the_target_exactly(faces256):
    source, target = faces256[0], faces256[1]
    out, stats = poisson_blend_with_stats(source, target, torch.zeros(1, 1, 256, 256))
    assert torch.equal(out, target) and stats.iterations == (0,)


def test_full_mask_returns_the_source(faces256):
    # No Dirichlet pixel is left: the free constant is fixed by matching the source's mean.
    source, target = faces256[0], faces256[1]
    out = poisson_blend(source, target, torch.ones(1, 1, 256, 256))
    assert float((out - source).abs().max()) < 1 / 255


def test_full_mask_with_mixed_gradients_matches_the_least_squares_solution(faces256):
    # The mixed field is not a gradient: the result is its least-squares integral, with the
    # free constant set by the source's mean.
    source, target = faces256[0][..., ::4, ::4], faces256[1][..., ::4, ::4]
    inside = np.ones((64, 64), bool)
    out = poisson_blend(source, target, _mask(inside), gradients="mixed")
    assert _max_error_grey(out, perez_reference(source, target, inside, mixed=True)) < 0.25
    assert not torch.allclose(out, source, atol=0.05)


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_tiny_images(size):
    g = torch.Generator().manual_seed(size)
    source, target = torch.rand(1, 3, size, size, generator=g), torch.rand(1, 3, size, size,
                                                                            generator=g)
    full = poisson_blend(source, target, torch.ones(1, 1, size, size))
    assert float((full - source).abs().max()) < 1e-4
    if size == 1:
        return
    mask = torch.zeros(1, 1, size, size)
    mask[..., 0, 0] = 1
    out = poisson_blend(source, target, mask)
    np.testing.assert_allclose(out[0].numpy(), perez_reference(source, target,
                                                               mask[0, 0].numpy() > 0),
                               atol=1e-5)


def test_batch_items_with_different_masks_equal_per_image_results(faces256):
    sources = torch.cat(faces256[:3])
    targets = torch.cat(faces256[3:6])
    masks = torch.stack([
        torch.from_numpy(region_mask(256, "mouth"))[None],
        torch.zeros(1, 256, 256),
        torch.from_numpy(blob_mask(256, "eyes", rng=1))[None],
    ])
    batch = poisson_blend(sources, targets, masks)
    for i in range(3):
        single = poisson_blend(sources[i : i + 1], targets[i : i + 1], masks[i : i + 1])
        assert torch.equal(batch[i : i + 1], single)
    assert torch.equal(batch[1], targets[1])


def test_mixed_gradients_keep_the_stronger_target_texture():
    # The source is flat; the target has stripes inside the mask: "mixed" keeps the stripes,
    # "source" paints a smooth membrane over them.
    h = w = 64
    xx = torch.arange(w).float()
    stripes = 0.5 + 0.3 * torch.sin(xx * 1.3)
    target = stripes.expand(1, 3, h, w).clone()
    source = torch.full((1, 3, h, w), 0.4)
    mask = torch.zeros(1, 1, h, w)
    mask[..., 16:48, 16:48] = 1
    region = (slice(None), slice(None), slice(20, 44), slice(20, 44))

    def texture(x):
        return float((x[..., 1:] - x[..., :-1])[region].abs().mean())

    mixed = poisson_blend(source, target, mask, gradients="mixed")
    plain = poisson_blend(source, target, mask, gradients="source")
    assert texture(mixed) > 0.9 * texture(target)
    assert texture(plain) < 0.1 * texture(target)
    torch.testing.assert_close(mixed, target, atol=1e-4, rtol=0)


def test_warns_when_it_stops_before_converging(faces256):
    source, target = faces256[0], faces256[1]
    mask = _mask(region_mask(256, "lower_face"))
    with pytest.warns(RuntimeWarning, match="relative residual"):
        poisson_blend(source, target, mask, max_iter=1, tol=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        poisson_blend(source, target, mask)
