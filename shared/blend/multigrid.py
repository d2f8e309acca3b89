"""Geometric multigrid for the masked 5-point Laplacian (the preconditioner of exact mode).

The operator on a grid is ``(A x)_p = d_p x_p − Σ_q w_pq x_q`` over the cells p of a mask,
with ``d_p = Σ_q w_pq + g_p``: ``w`` couples 4-neighbours inside the mask, ``g`` ("ground")
couples a cell to known (Dirichlet) values. Vectors are 0 off the mask.

Coarse grids aggregate 2×2 cells. Galerkin aggregation would sum the fine couplings; halving
the sums gives the coarse 5-point operator of the same PDE (plain Galerkin over-weights by
2), and a further 1/4 lets the restriction average the residual instead of summing it. One
V-cycle: two red-black Gauss-Seidel sweeps, restriction, the coarse V-cycle, piecewise-
constant prolongation, two sweeps in the reverse colour order (so that the cycle is a
symmetric operator, as conjugate gradients need); a direct solve (a pseudo-inverse, so that
a mask without any Dirichlet cell works too) on the coarsest grid of ≤ 256 cells.

Every grid is stored red-black packed: a field (…, h, w) with even h, w becomes
(…, 2, h, w/2), ``[…, 0, i, k]`` the red cell (i, 2k + i%2) and ``[…, 1, i, k]`` the black
cell (i, 2k + 1 − i%2). Every neighbour of a red cell is black and vice versa, so a
half-sweep reads one half of the data and writes the other, without colour masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

COARSEST_CELLS = 256
SWEEPS = 2


def pack(x: Tensor) -> Tensor:
    """(…, h, w) with even h, w → red-black packed (…, 2, h, w/2)."""
    height, width = x.shape[-2:]
    pairs = x.reshape(*x.shape[:-1], width // 2, 2)  # [..., i, k, j % 2]
    packed = x.new_empty(*x.shape[:-2], 2, height, width // 2)
    packed[..., 0, 0::2, :] = pairs[..., 0::2, :, 0]
    packed[..., 0, 1::2, :] = pairs[..., 1::2, :, 1]
    packed[..., 1, 0::2, :] = pairs[..., 0::2, :, 1]
    packed[..., 1, 1::2, :] = pairs[..., 1::2, :, 0]
    return packed


def unpack(packed: Tensor) -> Tensor:
    """Inverse of :func:`pack`."""
    height, half = packed.shape[-2:]
    pairs = packed.new_empty(*packed.shape[:-3], height, half, 2)
    pairs[..., 0::2, :, 0] = packed[..., 0, 0::2, :]
    pairs[..., 1::2, :, 1] = packed[..., 0, 1::2, :]
    pairs[..., 0::2, :, 1] = packed[..., 1, 0::2, :]
    pairs[..., 1::2, :, 0] = packed[..., 1, 1::2, :]
    return pairs.reshape(*packed.shape[:-3], height, 2 * half)


@dataclass(frozen=True)
class Operator:
    """A grid's operator, unpacked: mask ``om`` (1, 1, h, w) as 0/1 floats, couplings ``wx``
    (1, 1, h, w−1) to the right neighbour and ``wy`` (1, 1, h−1, w) to the one below, and
    ``ground`` (1, 1, h, w) to Dirichlet cells."""

    om: Tensor
    wx: Tensor
    wy: Tensor
    ground: Tensor

    @staticmethod
    def unit(om: Tensor, ground: Tensor) -> Operator:
        """The finest operator: coupling 1 between 4-neighbours of the mask."""
        wx = om[..., :, 1:] * om[..., :, :-1]
        wy = om[..., 1:, :] * om[..., :-1, :]
        return Operator(om, wx, wy, ground)

    @property
    def shape(self) -> tuple[int, int]:
        return self.om.shape[-2], self.om.shape[-1]

    def diagonal(self) -> Tensor:
        d = self.ground.clone()
        d[..., 1:, :] += self.wy
        d[..., :-1, :] += self.wy
        d[..., :, 1:] += self.wx
        d[..., :, :-1] += self.wx
        return d

    def padded_to_even(self) -> Operator:
        height, width = self.shape
        ph, pw = height % 2, width % 2
        if not ph and not pw:
            return self
        return Operator(
            F.pad(self.om, (0, pw, 0, ph)),
            F.pad(self.wx, (0, pw, 0, ph)),
            F.pad(self.wy, (0, pw, 0, ph)),
            F.pad(self.ground, (0, pw, 0, ph)),
        )

    def coarsened(self) -> Operator:
        """The 2×2-aggregated operator; needs even sides."""
        om = F.max_pool2d(self.om, 2)
        ground = F.avg_pool2d(self.ground, 2) * 0.5  # ½ Galerkin, ¼ for averaging
        wx = 0.125 * (self.wx[..., 0::2, 1::2] + self.wx[..., 1::2, 1::2])
        wy = 0.125 * (self.wy[..., 1::2, 0::2] + self.wy[..., 1::2, 1::2])
        return Operator(om, wx.contiguous(), wy.contiguous(), ground)

    def inverse(self) -> Tensor:
        """The dense (h·w)² inverse in float64 (rows off the mask are identity); a
        pseudo-inverse when no cell is grounded (then A is singular: constants are free)."""
        height, width = self.shape
        n = height * width
        dev = self.om.device
        a = torch.zeros(n, n, dtype=torch.float64, device=dev)
        idx = torch.arange(n, device=dev).view(height, width)
        on = self.om.reshape(n) > 0
        a[idx.reshape(n), idx.reshape(n)] = torch.where(
            on, self.diagonal().reshape(n).double(), 1.0
        )
        for i0, i1, w in ((idx[:, :-1], idx[:, 1:], self.wx), (idx[:-1, :], idx[1:, :], self.wy)):
            i0, i1, w = i0.reshape(-1), i1.reshape(-1), w.reshape(-1).double()
            a[i0, i1] = -w
            a[i1, i0] = -w
        if float(self.ground.sum()) == 0:
            return torch.linalg.pinv(a, hermitian=True)
        return torch.linalg.inv(a)


class PackedLevel:
    """One grid with even sides, its operator and vectors red-black packed."""

    def __init__(self, op: Operator, unit: bool) -> None:
        self.shape = op.shape
        self.om = pack(op.om)
        self.d = pack(op.diagonal())
        self.d_inv = self.om / torch.where(self.d > 0, self.d, 1)
        self.unit = unit  # all couplings 1 and vectors 0 off the mask: no weights needed
        if unit:
            return
        left, right = F.pad(op.wx, (1, 0)), F.pad(op.wx, (0, 1))
        up, down = pack(F.pad(op.wy, (0, 0, 1, 0))), pack(F.pad(op.wy, (0, 0, 0, 1)))
        left, right = pack(left), pack(right)
        # The horizontal neighbour in the same packed column is to the right for red cells of
        # even rows and black cells of odd rows, to the left otherwise; the "shift" one is
        # the other side.
        same, shift = torch.empty_like(left), torch.empty_like(left)
        for c, even_same, odd_same in ((0, right, left), (1, left, right)):
            even_shift, odd_shift = (left, right) if even_same is right else (right, left)
            same[..., c, 0::2, :] = even_same[..., c, 0::2, :]
            same[..., c, 1::2, :] = odd_same[..., c, 1::2, :]
            shift[..., c, 0::2, :] = even_shift[..., c, 0::2, :]
            shift[..., c, 1::2, :] = odd_shift[..., c, 1::2, :]
        self.weights = (same, up, down, shift)

    def neighbour_sum(self, other: Tensor, colour: int, base: Tensor | None = None) -> Tensor:
        """For the cells of ``colour``, ``base`` plus the weighted sum of their 4 neighbours
        (which are all in ``other``, the other colour's half)."""
        # The other horizontal neighbour is in column k−1 (red, even rows; black, odd rows)
        # or k+1.
        ev, od = slice(1, None), slice(None, -1)
        if colour == 1:
            ev, od = od, ev
        if self.unit:
            s = other.clone() if base is None else other + base
            s[..., 1:, :] += other[..., :-1, :]
            s[..., :-1, :] += other[..., 1:, :]
            s[..., 0::2, ev] += other[..., 0::2, od]
            s[..., 1::2, od] += other[..., 1::2, ev]
            return s
        same, up, down, shift = (w[..., colour, :, :] for w in self.weights)
        s = same * other if base is None else torch.addcmul(base, same, other)
        s[..., 1:, :].addcmul_(up[..., 1:, :], other[..., :-1, :])
        s[..., :-1, :].addcmul_(down[..., :-1, :], other[..., 1:, :])
        s[..., 0::2, ev].addcmul_(shift[..., 0::2, ev], other[..., 0::2, od])
        s[..., 1::2, od].addcmul_(shift[..., 1::2, od], other[..., 1::2, ev])
        return s

    def relax(self, x: Tensor, r: Tensor, colour: int) -> None:
        """Gauss-Seidel half-sweep over one colour, in place."""
        s = self.neighbour_sum(x[..., 1 - colour, :, :], colour, base=r[..., colour, :, :])
        torch.mul(s, self.d_inv[..., colour, :, :], out=x[..., colour, :, :])

    def apply(self, x: Tensor) -> Tensor:
        q = self.d * x
        for c in (0, 1):
            s = self.neighbour_sum(x[..., 1 - c, :, :], c)
            q[..., c, :, :].addcmul_(s, self.om[..., c, :, :], value=-1)
        return q

    def residual(self, r: Tensor, x: Tensor) -> Tensor:
        res = torch.addcmul(r, self.d, x, value=-1)
        for c in (0, 1):
            s = self.neighbour_sum(x[..., 1 - c, :, :], c)
            res[..., c, :, :].addcmul_(s, self.om[..., c, :, :])
        return res

    @staticmethod
    def restrict(res: Tensor) -> Tensor:
        """2×2 block means, unpacked (…, h/2, w/2): a block is both colours of a packed column
        over two rows."""
        both = res[..., 0, :, :] + res[..., 1, :, :]
        return (both[..., 0::2, :] + both[..., 1::2, :]) * 0.25

    def add_prolongated(self, x: Tensor, coarse: Tensor) -> None:
        """``x += om · (coarse (…, h/2, w/2) repeated over 2×2 blocks)``, in place."""
        height, half = x.shape[-2:]
        blocks = x.view(*x.shape[:-3], 2, height // 2, 2, half)
        om = self.om.view(*self.om.shape[:-3], 2, height // 2, 2, half)
        blocks.addcmul_(coarse[..., None, :, None, :], om)


class Multigrid:
    """The hierarchy for one finest operator (even sides); vectors are packed fields."""

    def __init__(self, finest: Operator) -> None:
        if finest.shape[0] % 2 or finest.shape[1] % 2:
            raise ValueError(f"finest: grid sides must be even, got {finest.shape}")
        ops = [finest]
        while ops[-1].shape[0] * ops[-1].shape[1] > COARSEST_CELLS:
            ops[-1] = ops[-1].padded_to_even()
            ops.append(ops[-1].coarsened())
        coarsest = ops[-1].padded_to_even()
        self.levels = [PackedLevel(op, unit=i == 0) for i, op in enumerate(ops[:-1])]
        self.coarsest = coarsest
        self.coarsest_inverse = coarsest.inverse()
        self.coarsest_level = PackedLevel(coarsest, unit=len(ops) == 1)
        self.finest = self.levels[0] if self.levels else self.coarsest_level
        self.shapes = [level.shape for level in self.levels] + [coarsest.shape]

    def v_cycle(self, r: Tensor, depth: int = 0) -> Tensor:
        """An approximate solution of ``A x = r`` (packed, at grid ``depth``)."""
        if depth == len(self.levels):
            flat = unpack(r).reshape(*r.shape[:-3], -1).double() @ self.coarsest_inverse.T
            x = flat.to(r.dtype).view(*r.shape[:-3], *self.coarsest.shape) * self.coarsest.om
            return pack(x)
        level = self.levels[depth]
        x = torch.empty_like(r)
        torch.mul(r[..., 0, :, :], level.d_inv[..., 0, :, :], out=x[..., 0, :, :])  # red, x=0
        level.relax(x, r, 1)
        for _ in range(SWEEPS - 1):
            level.relax(x, r, 0)
            level.relax(x, r, 1)
        coarse_r = level.restrict(level.residual(r, x))
        coarse_h, coarse_w = self.shapes[depth + 1]
        pad_h, pad_w = coarse_h - coarse_r.shape[-2], coarse_w - coarse_r.shape[-1]
        if pad_h or pad_w:
            coarse_r = F.pad(coarse_r, (0, pad_w, 0, pad_h))
        coarse_x = unpack(self.v_cycle(pack(coarse_r), depth + 1))
        level.add_prolongated(x, coarse_x[..., : level.shape[0] // 2, : level.shape[1] // 2])
        for _ in range(SWEEPS):  # reverse colour order: the V-cycle stays symmetric
            level.relax(x, r, 1)
            level.relax(x, r, 0)
        return x
