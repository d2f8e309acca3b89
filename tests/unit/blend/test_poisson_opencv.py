"""mode="opencv" reproduces cv2.seamlessClone (same-size images pasted in place)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft
import torch

from shared.blend import poisson_blend
from shared.blend.poisson_opencv import dst1, solve_dirichlet_box
from shared.train.face_regions import region_mask
from tests.unit.blend.helpers import cv2_seamless_clone, quantise_like_cv2

# Every test runs with the compiled (CPU) and the tensor (CUDA, no-numba) implementation.
pytestmark = pytest.mark.usefixtures("implementation")


def _agreement(ours: torch.Tensor, theirs: np.ndarray) -> tuple[int, float]:
    diff = np.abs(quantise_like_cv2(ours) - theirs)
    return int(diff.max()), float((diff <= 2).mean())


@pytest.mark.parametrize("n", [1, 2, 3, 8, 31, 100, 575, 694])
@pytest.mark.parametrize("rows", [1, 5])  # 15 rows: pairs plus one left over; 3: one pair + 1
def test_dst1_matches_scipy(n, rows):
    x = torch.randn(3, rows, n, dtype=torch.float64)
    expected = scipy.fft.dst(x.numpy(), type=1, axis=-1) / 2
    np.testing.assert_allclose(dst1(x).numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(dst1(x.transpose(1, 2), 1).numpy(), expected.transpose(0, 2, 1),
                               atol=1e-12)


def test_dirichlet_box_solve_inverts_the_5_point_laplacian():
    rhs = torch.randn(2, 13, 17, dtype=torch.float64)
    u = torch.nn.functional.pad(solve_dirichlet_box(rhs), (1, 1, 1, 1))
    lap = u[:, :-2, 1:-1] + u[:, 2:, 1:-1] + u[:, 1:-1, :-2] + u[:, 1:-1, 2:] - 4 * u[:, 1:-1, 1:-1]
    torch.testing.assert_close(lap, rhs, atol=1e-10, rtol=0)


@pytest.mark.parametrize("region", ["mouth", "eyes", "lower_face", "nose"])
@pytest.mark.parametrize("mixed", [False, True])
def test_matches_cv2_seamless_clone_on_faces(faces256, region, mixed):
    source, target = faces256[0], faces256[1]
    mask = region_mask(256, region) > 0.5
    ours = poisson_blend(source, target, torch.from_numpy(mask)[None, None].float(),
                         mode="opencv", gradients="mixed" if mixed else "source")
    worst, share = _agreement(ours, cv2_seamless_clone(source, target, mask, mixed))
    assert share >= 0.999 and worst <= 3, (worst, share)


def test_matches_cv2_on_an_ellipse_at_1024(faces1024):
    source, target = faces1024
    yy, xx = np.mgrid[:1024, :1024]
    c = 511.5
    mask = ((yy - c) / (0.28 * 1024)) ** 2 + ((xx - c) / (0.34 * 1024)) ** 2 <= 1
    ours = poisson_blend(source, target, torch.from_numpy(mask)[None, None].float(), mode="opencv")
    worst, share = _agreement(ours, cv2_seamless_clone(source, target, mask, False))
    assert share >= 0.999 and worst <= 2, (worst, share)


@pytest.mark.parametrize("case", ["border", "full", "components"])
def test_matches_cv2_in_edge_cases(faces256, case):
    source, target = faces256[2], faces256[3]
    yy, xx = np.mgrid[:256, :256]
    if case == "border":  # touches three sides: OpenCV zeroes the mask's image border
        mask = (yy > 150) | (xx < 20)
    elif case == "full":
        mask = np.ones((256, 256), bool)
    else:
        mask = (region_mask(256, "eyes") > 0.5) | (region_mask(256, "mouth") > 0.5)
        mask[20:23, 30:90] = True  # a thin strip
    ours = poisson_blend(source, target, torch.from_numpy(mask)[None, None].float(), mode="opencv")
    worst, share = _agreement(ours, cv2_seamless_clone(source, target, mask, False))
    assert share >= 0.999, (worst, share)
    if case == "full":  # the whole image is the ROI; its frame (and the zeroed border) stay
        frame = torch.ones(256, 256, dtype=torch.bool)
        frame[2:-2, 2:-2] = False
        assert torch.equal(ours[..., frame], target[..., frame])


def test_changes_nothing_outside_the_mask_bounding_box_interior(faces256):
    source, target = faces256[0], faces256[4]
    mask = torch.from_numpy(region_mask(256, "mouth"))[None, None]
    out = poisson_blend(source, target, mask, mode="opencv")
    rows = torch.nonzero(mask[0, 0].any(1)).flatten()
    cols = torch.nonzero(mask[0, 0].any(0)).flatten()
    interior = torch.zeros(256, 256, dtype=torch.bool)
    interior[rows[0] + 1 : rows[-1], cols[0] + 1 : cols[-1]] = True
    assert torch.equal(out[..., ~interior], target[..., ~interior])
    assert not torch.equal(out[..., interior], target[..., interior])


def test_any_channel_count_matches_the_per_channel_result(faces256):
    source, target = faces256[0], faces256[1]
    mask = torch.from_numpy(region_mask(256, "lower_face"))[None, None]
    rgb = poisson_blend(source, target, mask, mode="opencv")
    grey = poisson_blend(source[:, :1], target[:, :1], mask, mode="opencv")
    assert torch.equal(grey, rgb[:, :1])
    five = torch.cat([source, source[:, :2]], 1), torch.cat([target, target[:, :2]], 1)
    out5 = poisson_blend(*five, mask, mode="opencv")
    assert torch.equal(out5[:, :3], rgb) and torch.equal(out5[:, 3:], rgb[:, :2])


def test_empty_and_tiny_masks_return_the_target(faces256):
    source, target = faces256[0], faces256[1]
    mask = torch.zeros(1, 1, 256, 256)
    assert torch.equal(poisson_blend(source, target, mask, mode="opencv"), target)
    mask[..., 100:102, 50:150] = 1  # a 2-px-high ROI has no interior
    assert torch.equal(poisson_blend(source, target, mask, mode="opencv"), target)
    mask = torch.zeros(1, 1, 256, 256)
    mask[..., 0, :] = 1  # only on the border, which OpenCV zeroes
    assert torch.equal(poisson_blend(source, target, mask, mode="opencv"), target)


def test_never_mutates_the_mask(faces256):
    source, target = faces256[0], faces256[1]
    for mask in (torch.from_numpy(region_mask(256, "mouth", soft=True))[None, None],
                 torch.from_numpy(region_mask(256, "eyes") > 0.5)[None, None]):
        before = mask.clone()
        for mode in ("opencv", "exact"):
            poisson_blend(source, target, mask, mode=mode)
            assert torch.equal(mask, before)


def test_batch_equals_per_image(faces256):
    sources = torch.cat(faces256[:3])
    targets = torch.cat(faces256[3:6])
    masks = torch.stack([torch.from_numpy(region_mask(256, r))[None]
                         for r in ("mouth", "eyes", "lower_face")])
    batch = poisson_blend(sources, targets, masks, mode="opencv")
    for i in range(3):
        single = poisson_blend(sources[i : i + 1], targets[i : i + 1], masks[i : i + 1],
                               mode="opencv")
        assert torch.equal(batch[i : i + 1], single)
    assert not math.isnan(float(batch.sum()))
