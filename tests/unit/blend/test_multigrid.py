"""The multigrid preconditioner of exact mode: packing, operators, V-cycle symmetry."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from shared.blend.multigrid import Multigrid, Operator, PackedLevel, pack, unpack


def _operator(seed: int, h: int = 40, w: int = 54, weighted: bool = False) -> Operator:
    g = torch.Generator().manual_seed(seed)
    om = (torch.rand(1, 1, h, w, generator=g) > 0.2).float()
    ground = om * torch.randint(1, 3, (1, 1, h, w), generator=g).float()  # no singular cell
    op = Operator.unit(om, ground)
    if weighted:
        op = Operator(op.om, op.wx * torch.rand(op.wx.shape, generator=g),
                      op.wy * torch.rand(op.wy.shape, generator=g), op.ground)
    return op


def _dense_apply(op: Operator, x: torch.Tensor) -> torch.Tensor:
    """Reference (A x) on the unpacked grid."""
    s = torch.zeros_like(x)
    s[..., :, :-1] += op.wx * x[..., :, 1:]
    s[..., :, 1:] += op.wx * x[..., :, :-1]
    s[..., :-1, :] += op.wy * x[..., 1:, :]
    s[..., 1:, :] += op.wy * x[..., :-1, :]
    return (op.diagonal() * x - s) * op.om


def test_pack_round_trip_and_colours():
    x = torch.arange(2 * 6 * 8, dtype=torch.float32).view(1, 2, 6, 8)
    packed = pack(x)
    assert packed.shape == (1, 2, 2, 6, 4)
    assert torch.equal(unpack(packed), x)
    yy, xx = torch.meshgrid(torch.arange(6), torch.arange(8), indexing="ij")
    red = pack(((yy + xx) % 2 == 0).float()[None, None])
    assert torch.equal(red[..., 0, :, :], torch.ones(1, 1, 6, 4))
    assert torch.equal(red[..., 1, :, :], torch.zeros(1, 1, 6, 4))


@pytest.mark.parametrize("weighted", [False, True])
def test_packed_operator_matches_the_unpacked_one(weighted):
    op = _operator(1, weighted=weighted)
    level = PackedLevel(op, unit=not weighted)
    x = torch.randn(1, 3, 40, 54) * op.om
    r = torch.randn(1, 3, 40, 54) * op.om
    torch.testing.assert_close(unpack(level.apply(pack(x))), _dense_apply(op, x))
    torch.testing.assert_close(unpack(level.residual(pack(r), pack(x))), r - _dense_apply(op, x))
    torch.testing.assert_close(PackedLevel.restrict(pack(r)), F.avg_pool2d(r, 2))


def test_relaxation_is_gauss_seidel_per_colour():
    op = _operator(2, weighted=True)
    level = PackedLevel(op, unit=False)
    x, r = torch.randn(1, 2, 40, 54) * op.om, torch.randn(1, 2, 40, 54) * op.om
    packed = pack(x)
    level.relax(packed, pack(r), 0)
    # red cells now satisfy their equations exactly; black ones are unchanged
    res = level.residual(pack(r), packed)  # packed: [..., colour, i, k]
    assert float(res[..., 0, :, :].abs().max()) < 1e-5
    assert float(res[..., 1, :, :].abs().max()) > 0.1
    assert torch.equal(packed[..., 1, :, :], pack(x)[..., 1, :, :])


def test_v_cycle_is_a_symmetric_positive_definite_operator():
    om = torch.zeros(1, 1, 64, 80)
    om[..., 5:60, 3:70] = 1
    om[..., 20:30, 20:60] = 0  # a hole: Dirichlet cells inside
    unit = Operator.unit(om, torch.zeros_like(om))
    ground = (4 - unit.diagonal()) * om  # couplings from the mask to the cells around it
    mg = Multigrid(Operator.unit(om, ground))
    assert len(mg.levels) >= 2
    g = torch.Generator().manual_seed(0)
    a = pack(torch.randn(1, 1, 64, 80, generator=g) * om)
    b = pack(torch.randn(1, 1, 64, 80, generator=g) * om)
    va, vb = mg.v_cycle(a), mg.v_cycle(b)
    torch.testing.assert_close((va * b).sum(), (a * vb).sum(), rtol=1e-4, atol=1e-4)
    assert float((va * a).sum()) > 0 and float((vb * b).sum()) > 0
    # and a good approximate inverse: one cycle removes most of the error
    x = pack(torch.randn(1, 1, 64, 80, generator=g) * om)
    error = mg.v_cycle(mg.finest.apply(x)) - x
    assert float(error.norm()) < 0.3 * float(x.norm())


def test_odd_sides_are_refused():
    with pytest.raises(ValueError, match="finest: grid sides must be even"):
        Multigrid(Operator.unit(torch.ones(1, 1, 5, 6), torch.ones(1, 1, 5, 6)))
