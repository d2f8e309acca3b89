from __future__ import annotations

import pytest
import torch
from torch import nn

from shared.blend import (
    SUPPRESSOR_NAMES,
    MAResUNetSuppressor,
    NaiveSuppressor,
    PoissonSuppressor,
    Suppressor,
    build_suppressor,
    naive_blend,
    poisson_blend,
)
from shared.train.face_regions import blob_mask


class _ConstantResidual(nn.Module):
    """Stand-in with MAResUNet's interface: predicts the residual 0.2 everywhere."""

    num_channels = 3
    num_classes = 3

    def forward(self, x):
        return torch.full_like(x, 0.2)


@pytest.fixture
def triple(faces256):
    mask = torch.from_numpy(blob_mask(256, "mouth", rng=7))[None, None]
    return faces256[0], faces256[1], mask


def test_names():
    assert SUPPRESSOR_NAMES == ("naive", "poisson", "poisson-opencv", "maresunet", "sdea")
    for name in ("naive", "poisson", "poisson-opencv"):
        suppressor = build_suppressor(name)
        assert suppressor.name == name
        assert isinstance(suppressor, Suppressor)
    assert build_suppressor("maresunet", network=_ConstantResidual()).name == "maresunet"


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"name: unknown suppressor 'magic'.*'poisson-opencv'"):
        build_suppressor("magic")


def test_maresunet_needs_a_network():
    with pytest.raises(ValueError, match="network: suppressor 'maresunet' needs a MAResUNet"):
        build_suppressor("maresunet")
    with pytest.raises(ValueError, match="network: expected a MAResUNet"):
        MAResUNetSuppressor("weights.pt")  # type: ignore[arg-type]


def test_naive_suppressor_is_the_naive_composite(triple):
    original, edited, mask = triple
    assert torch.equal(NaiveSuppressor()(original, edited, mask),
                       naive_blend(original, edited, mask))


@pytest.mark.parametrize(("name", "mode"), [("poisson", "exact"), ("poisson-opencv", "opencv")])
def test_poisson_suppressor_blends_the_edit_into_the_original(triple, name, mode):
    original, edited, mask = triple
    out = build_suppressor(name)(original, edited, mask)
    assert torch.equal(out, poisson_blend(edited, original, mask, mode=mode))
    if mode == "exact":
        outside = (mask < 0.5).expand_as(out)
        assert torch.equal(out[outside], original[outside])


def test_poisson_suppressor_options():
    suppressor = PoissonSuppressor(mode="opencv", gradients="mixed")
    assert suppressor.name == "poisson-opencv-mixed"
    with pytest.raises(ValueError, match="mode: 'fast' is not one of"):
        PoissonSuppressor(mode="fast")  # type: ignore[arg-type]


def test_maresunet_suppressor_refines_the_naive_composite(triple):
    original, edited, mask = triple
    out = build_suppressor("maresunet", network=_ConstantResidual())(original, edited, mask)
    # residual_refine: out = (2·naive − 1 + 0.2 + 1) / 2 = naive + 0.1, clamped, inside the
    # soft mask's support only: outside it the original comes back untouched
    naive = naive_blend(original, edited, mask)
    expected = torch.where(mask > 0, (naive + 0.1).clamp(0, 1), naive)
    torch.testing.assert_close(out, expected)
    assert torch.equal(out[(mask == 0).expand_as(out)], original[(mask == 0).expand_as(out)])


class _BinaryConstantResidual(_ConstantResidual):
    composite = "binary"


def test_binary_composite_network_gets_the_binarised_mask_composite(triple):
    original, edited, mask = triple
    out = build_suppressor("maresunet", network=_BinaryConstantResidual())(original, edited, mask)
    inside = mask >= 0.5
    hard = torch.where(inside, edited, original)
    expected = torch.where(inside, (hard + 0.1).clamp(0, 1), original)
    torch.testing.assert_close(out, expected)


class _MaskEcho(nn.Module):
    """A mask-conditioned stand-in: its residual is the mask channel it receives."""

    num_channels = 4
    num_classes = 3

    def forward(self, x):
        assert x.shape[1] == 4
        return x[:, 3:].expand(-1, 3, -1, -1) + 1  # the mask in [0, 2]


def test_mask_conditioned_maresunet_suppressor_gets_the_mask(triple):
    original, edited, mask = triple
    out = build_suppressor("maresunet", network=_MaskEcho())(original, edited, mask)
    # the network saw 2·mask − 1; residual_refine adds (2·mask − 1 + 1) / 2 = mask
    expected = (naive_blend(original, edited, mask) + mask).clamp(0, 1)
    torch.testing.assert_close(out, expected)


def test_maresunet_suppressor_with_the_real_network_at_zero_init(triple):
    from shared.models.maresunet import MAResUNet, zero_init_head

    original, edited, mask = triple
    small = [t[..., ::4, ::4].contiguous() for t in (original, edited, mask)]
    net = zero_init_head(MAResUNet(num_classes=3, num_channels=3, base_width=8)).eval()
    with torch.no_grad():
        out = MAResUNetSuppressor(net)(*small)
    torch.testing.assert_close(out, naive_blend(*small), atol=1e-6, rtol=0)


def test_suppressors_reject_bad_input(triple):
    original, edited, mask = triple
    for name in ("naive", "poisson", "poisson-opencv"):
        with pytest.raises(ValueError, match="mask"):
            build_suppressor(name)(original, edited, mask * 3)
