from __future__ import annotations

import numpy as np
import pytest

from shared.train.face_regions import (
    CANONICAL_LANDMARKS,
    REGION_NAMES,
    REGIONS,
    blob_mask,
    region_mask,
)


def _centroid(mask: np.ndarray) -> tuple[float, float]:
    h, w = mask.shape
    yy, xx = np.mgrid[:h, :w]
    total = mask.sum()
    return float((xx * mask).sum() / total + 0.5) / w, float((yy * mask).sum() / total + 0.5) / h


def test_required_regions_exist():
    for name in ("mouth", "eyes", "lower_face", "nose", "brows", "face"):
        assert name in REGION_NAMES and REGIONS[name]


@pytest.mark.parametrize("region", REGION_NAMES)
def test_hard_masks_are_binary_and_sit_on_the_canonical_geometry(region):
    mask = region_mask(256, region)
    assert mask.shape == (256, 256) and mask.dtype == np.float32
    assert set(np.unique(mask)) == {0.0, 1.0}
    ellipses = REGIONS[region]
    cx = np.mean([e.cx for e in ellipses])
    cy = np.mean([e.cy for e in ellipses])
    x, y = _centroid(mask)
    assert abs(x - cx) < 0.01 and abs(y - cy) < 0.01


def test_landmarks_follow_ffhq_alignment():
    lx, ly = CANONICAL_LANDMARKS["left_eye"]
    rx, ry = CANONICAL_LANDMARKS["right_eye"]
    assert (lx + rx) / 2 == 0.5 and ly == ry and rx - lx == pytest.approx(0.25)
    assert CANONICAL_LANDMARKS["mouth"][1] == pytest.approx(0.745)
    x, y = _centroid(region_mask(512, "mouth"))
    assert (x, y) == pytest.approx(CANONICAL_LANDMARKS["mouth"], abs=0.005)
    assert _centroid(region_mask(512, "left_eye"))[0] < 0.5 < _centroid(
        region_mask(512, "right_eye"))[0]


def test_masks_scale_with_resolution():
    small = region_mask(256, "lower_face")
    big = region_mask(1024, "lower_face").reshape(256, 4, 256, 4).mean(axis=(1, 3))
    assert np.abs(small - big).mean() < 0.01
    assert small.mean() == pytest.approx(big.mean(), abs=0.002)


def test_non_square_sizes():
    mask = region_mask((200, 300), "mouth")
    assert mask.shape == (200, 300)
    x, y = _centroid(mask)
    assert (x, y) == pytest.approx((0.5, 0.745), abs=0.01)


def test_soft_masks_fall_off_smoothly_around_the_hard_one():
    hard = region_mask(256, "nose")
    soft = region_mask(256, "nose", soft=True, feather=0.05)
    assert np.array_equal(soft >= 0.5, hard > 0.5) or np.mean((soft >= 0.5) != (hard > 0.5)) < 1e-3
    assert 0 < np.mean((soft > 0) & (soft < 1)) and soft.max() == 1 and soft.min() == 0
    assert np.abs(np.diff(soft, axis=0)).max() < 0.15  # no step edges


def test_jitter_is_seeded():
    a = region_mask(128, "eyes", jitter=0.2, rng=5)
    b = region_mask(128, "eyes", jitter=0.2, rng=np.random.default_rng(5))
    c = region_mask(128, "eyes", jitter=0.2, rng=6)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert not np.array_equal(a, region_mask(128, "eyes"))


@pytest.mark.parametrize("region", ["mouth", "eyes", "lower_face", "brows"])
def test_activation_masks_are_blobby_soft_and_seeded(region):
    a = blob_mask(256, region, rng=11)
    assert a.shape == (256, 256) and a.dtype == np.float32
    assert a.max() == pytest.approx(1.0, abs=1e-3) and a.min() >= 0
    assert np.array_equal(a, blob_mask(256, region, rng=11))
    assert not np.array_equal(a, blob_mask(256, region, rng=12))
    assert np.mean((a > 0.02) & (a < 0.98)) > 0.002  # a smooth falloff exists
    assert np.abs(np.diff(a, axis=1)).max() < 0.25  # …without step edges
    # most of the mass lies near the region
    near = region_mask(256, region, soft=True, feather=0.08) > 0
    assert (a * near).sum() > 0.8 * a.sum()


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"region: unknown region 'ears'.*'mouth'"):
        region_mask(64, "ears")
    with pytest.raises(ValueError, match="size"):
        region_mask(0, "mouth")
    with pytest.raises(ValueError, match="size"):
        region_mask((64, 64, 3), "mouth")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rng"):
        region_mask(64, "mouth", jitter=0.1)
    with pytest.raises(ValueError, match="jitter"):
        region_mask(64, "mouth", jitter=2.0, rng=0)
    with pytest.raises(ValueError, match="blobs"):
        blob_mask(64, "mouth", rng=0, blobs=0)
    with pytest.raises(ValueError, match="rng"):
        blob_mask(64, "mouth", rng="seed")  # type: ignore[arg-type]
