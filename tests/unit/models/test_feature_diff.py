from __future__ import annotations

import pytest
import torch

from shared.models.feature_diff import feature_difference_mask, smoothstep

RESOLUTIONS = (4, 8, 16, 32, 64)


def _features(batch: int = 2, seed: int = 0) -> dict[int, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {r: torch.randn(batch, 8, r, r, generator=generator) for r in RESOLUTIONS}


def _with_corner_edit(feats: dict[int, torch.Tensor], amount: float = 3.0) -> dict:
    edited = {}
    for r, f in feats.items():
        e = f.clone()
        e[:, :, : r // 4, : r // 4] += amount  # top-left sixteenth of the image
        edited[r] = e
    return edited


def test_identical_features_give_an_all_zero_mask() -> None:
    feats = _features()
    mask = feature_difference_mask(feats, {r: f.clone() for r, f in feats.items()}, 64)
    assert mask.shape == (2, 1, 64, 64)
    assert torch.equal(mask, torch.zeros_like(mask))


def test_local_difference_gives_a_local_mask() -> None:
    feats = _features()
    mask = feature_difference_mask(feats, _with_corner_edit(feats), (64, 96))
    assert mask.shape == (2, 1, 64, 96)
    assert mask.min() >= 0 and mask.max() <= 1
    inside = mask[:, :, :12, :18]
    outside = mask[:, :, 32:, 48:]
    assert inside.mean() > 0.95
    assert outside.max() == 0


def test_resolution_scales_are_normalised() -> None:
    feats = _features()
    edited = _with_corner_edit(feats)
    reference = feature_difference_mask(feats, edited, 64)
    scaled = {r: f * (100.0 if r == 32 else 1.0) for r, f in feats.items()}
    scaled_edit = {r: f * (100.0 if r == 32 else 1.0) for r, f in edited.items()}
    torch.testing.assert_close(feature_difference_mask(scaled, scaled_edit, 64), reference)


def test_each_image_is_normalised_on_its_own() -> None:
    feats = _features()
    # item 0 is edited in a corner, item 1 is unchanged
    edited = {r: torch.stack([e[0], feats[r][1]]) for r, e in _with_corner_edit(feats).items()}
    mask = feature_difference_mask(feats, edited, 32)
    assert mask[0].max() == 1
    assert torch.equal(mask[1], torch.zeros_like(mask[1]))
    single = feature_difference_mask(
        {r: f[:1] for r, f in feats.items()}, {r: e[:1] for r, e in edited.items()}, 32
    )
    torch.testing.assert_close(mask[:1], single)


def test_change_at_one_resolution_still_gives_a_mask() -> None:
    # An edit limited to some W+ layers leaves other resolutions unchanged (arithmetic mean).
    feats = _features()
    edited = {r: f.clone() for r, f in feats.items()}
    edited[32][:, :, 16:, 16:] += 2.0
    mask = feature_difference_mask(feats, edited, 64)
    assert mask[:, :, 40:, 40:].min() > 0.9
    assert mask[:, :, :20, :20].max() == 0


def test_default_resolutions_skip_the_coarsest_maps() -> None:
    feats = _features()
    edited = {r: f.clone() for r, f in feats.items()}
    edited[4] += 5.0  # ignored by default (4 < 16)
    assert feature_difference_mask(feats, edited, 32).max() == 0
    # a spatially uniform change has no location; rounding noise must not become a mask
    assert feature_difference_mask(feats, edited, 32, resolutions=[4]).max() < 1e-3
    edited[4][:, :, :1, :1] += 5.0
    assert feature_difference_mask(feats, edited, 32, resolutions=[4, 8]).max() == 1
    only_coarse = {r: feats[r] for r in (4, 8)}
    only_coarse_edit = {r: edited[r] for r in (4, 8)}
    assert feature_difference_mask(only_coarse, only_coarse_edit, 32).max() == 1


def test_half_precision_inputs() -> None:
    feats = _features()
    edited = _with_corner_edit(feats)
    half = {r: f.bfloat16() for r, f in feats.items()}
    half_edit = {r: e.bfloat16() for r, e in edited.items()}
    mask = feature_difference_mask(half, half_edit, 64)
    assert mask.dtype == torch.bfloat16
    reference = feature_difference_mask(feats, edited, 64)
    assert (mask.float() - reference).abs().mean() < 0.02


def test_smoothstep_contrast() -> None:
    x = torch.tensor([0.0, 0.1, 0.35, 0.6, 1.0])
    torch.testing.assert_close(smoothstep(x, 0.1, 0.6), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))


def test_bad_arguments() -> None:
    feats = _features()
    with pytest.raises(ValueError, match="resolutions"):
        feature_difference_mask(feats, feats, 32, resolutions=[128])
    with pytest.raises(ValueError, match="equal shape"):
        feature_difference_mask({16: feats[16]}, {16: feats[16][:, :4]}, 32)
    with pytest.raises(ValueError, match="out_size"):
        feature_difference_mask(feats, feats, 0)
    with pytest.raises(ValueError, match="share no resolution"):
        feature_difference_mask({16: feats[16]}, {32: feats[32]}, 32)
    with pytest.raises(ValueError, match="low"):
        feature_difference_mask(feats, feats, 32, low=0.7, high=0.6)


def test_an_edit_that_changes_nothing_gives_no_mask_even_with_rounding_noise():
    import torch

    from shared.models.feature_diff import feature_difference_mask

    torch.manual_seed(0)
    feats = {16: torch.rand(1, 8, 16, 16) + 0.5, 32: torch.rand(1, 4, 32, 32) + 0.5}
    noisy = {r: f * (1 + 1e-7 * torch.randn_like(f)) for r, f in feats.items()}
    assert feature_difference_mask(feats, noisy, 64).abs().max() == 0
    edited = {r: f.clone() for r, f in feats.items()}
    edited[16][..., 4:8, 4:8] += 0.3  # a real, local edit still gives a full-range mask
    mask = feature_difference_mask(feats, edited, 64)
    assert mask.max() == 1 and mask.min() == 0
