"""``mode="exact"``: Pérez, Gangnet & Blake's discrete Poisson equation on the mask.

The unknowns are the pixels p of Ω = {mask ≥ 0.5}. With N_p the 4-neighbours of p that lie in
the image (Pérez's N_p ∩ S), each satisfies

    |N_p|·f_p − Σ_{q ∈ N_p ∩ Ω} f_q = Σ_{q ∈ N_p ∖ Ω} t_q + Σ_{q ∈ N_p} v_pq

where t is the target and v_pq the guidance: ``s_p − s_q`` of the source, or with
``gradients="mixed"`` ``t_p − t_q`` wherever ``|t_p − t_q| > |s_p − s_q| + 1e-5`` (per
channel; the margin makes ties, frequent in 8-bit images, go to the source deterministically).
Every pixel outside Ω keeps the target value (Dirichlet condition); where Ω reaches the image
border there is no neighbour beyond, i.e. a zero-flux (Neumann) condition. If Ω is the whole
image there is no Dirichlet pixel and the solution is defined up to a constant per channel;
it is fixed so that the result's mean equals the source's (for ``gradients="source"`` the
result is then the source).

Solver: conjugate gradients on the mask's bounding box (sides rounded up to even),
preconditioned by one geometric multigrid V-cycle (:mod:`shared.blend.multigrid`). Initial
guess: the target. It stops when ‖b − A f‖₂ ≤ tol·‖b‖₂ for every channel or after
``max_iter`` iterations (default 100, with a RuntimeWarning). With the default
``tol = 1e-4`` the result matched a sparse direct solve to ≤ 0.1 grey level (8-bit units) on
face photos from 256² to 2048² (0.01–0.04 typically; ``tol = 1e-5`` gives ≤ 0.01), in 6–8
iterations at every resolution. Batch items are solved one after another on their own boxes,
so an item's result never depends on the rest of the batch. On the CPU the same system and
solver run as compiled loops (:mod:`shared.blend.exact_compiled`), channels in parallel.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

import torch
import torch.nn.functional as F
from torch import Tensor

from shared.blend.mask_box import mask_box
from shared.blend.multigrid import Multigrid, Operator, pack, unpack

DEFAULT_TOL = 1e-4
DEFAULT_MAX_ITER = 100
# Ties between source and target gradients go to the source (Pérez: target only where
# strictly stronger). 8-bit images tie often, and float rounding of k/255 would break those
# ties at random, so the target must be stronger by a margin (1e-5 ≈ 0.003 grey levels).
MIXED_TIE_MARGIN = 1e-5


@dataclass(frozen=True)
class ExactSolveStats:
    """Per batch item: CG iterations and final max relative residual (0 and 0.0 if Ω = ∅)."""

    iterations: tuple[int, ...]
    relative_residuals: tuple[float, ...]


def blend_exact(
    source: Tensor,
    target: Tensor,
    inside: Tensor,
    mixed: bool,
    out: Tensor,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    compiled: bool = False,
) -> ExactSolveStats:
    """Write Pérez's solution into ``out`` (a copy of the target) at the Ω pixels.

    ``source``/``target``: float32 (B, C, H, W); ``inside``: bool (B, 1, H, W). ``compiled``
    (CPU tensors only): solve with :mod:`shared.blend.exact_compiled` instead of tensor ops.
    """
    iterations, residuals = [], []
    for i in range(target.shape[0]):
        om = inside[i, 0]
        found = mask_box(om)
        if found is None:
            iterations.append(0)
            residuals.append(0.0)
            continue
        y0, y1, x0, x1 = found
        # The box gets even sides (for the red-black packing); it may overhang the image.
        box = (y0, y1 + (y1 - y0) % 2, x0, x1 + (x1 - x0) % 2)
        solved = None
        if compiled:
            solved = _solve_item_compiled(source[i], target[i], om, box, mixed, tol, max_iter)
        if solved is None:
            solved = _solve_item(source[i], target[i], om, box, mixed, tol, max_iter)
        solution, its, res = solved
        if res > tol:
            warnings.warn(
                f"poisson_blend(mode='exact'): batch item {i} stopped after {its} iterations "
                f"with relative residual {res:.2e} > tol={tol:g}",
                RuntimeWarning,
                stacklevel=4,
            )
        region = out[i, :, y0:y1, x0:x1]
        solution = solution[:, : y1 - y0, : x1 - x0].clamp_(0, 1).to(out.dtype)
        region.copy_(torch.where(om[y0:y1, x0:x1], solution, region))
        iterations.append(its)
        residuals.append(res)
    return ExactSolveStats(tuple(iterations), tuple(residuals))


def _solve_item(
    source: Tensor,
    target: Tensor,
    om_full: Tensor,
    box: tuple[int, int, int, int],
    mixed: bool,
    tol: float,
    max_iter: int,
) -> tuple[Tensor, int, float]:
    """Solve one image (C, H, W) on ``box``; returns (solution on the box, its, residual)."""
    s = _framed(source, box)[None]
    t = _framed(target, box)[None]
    valid = _framed(torch.ones_like(om_full, dtype=source.dtype)[None], box)[None]
    om_f = _framed(om_full[None].to(source.dtype), box)[None]
    om = om_f[..., 1:-1, 1:-1].contiguous()

    # Guidance on the edges between horizontal / vertical neighbours; none across the border.
    vx = s[..., :, 1:] - s[..., :, :-1]
    vy = s[..., 1:, :] - s[..., :-1, :]
    if mixed:
        tx = t[..., :, 1:] - t[..., :, :-1]
        ty = t[..., 1:, :] - t[..., :-1, :]
        vx = torch.where(tx.abs() > vx.abs() + MIXED_TIE_MARGIN, tx, vx)
        vy = torch.where(ty.abs() > vy.abs() + MIXED_TIE_MARGIN, ty, vy)
    vx = vx * (valid[..., :, 1:] * valid[..., :, :-1])
    vy = vy * (valid[..., 1:, :] * valid[..., :-1, :])
    guidance = (vx[..., 1:-1, :-1] - vx[..., 1:-1, 1:]) + (vy[..., :-1, 1:-1] - vy[..., 1:, 1:-1])
    dirichlet = _neighbour_sum_framed(t * (valid * (1 - om_f)))
    b = (guidance + dirichlet) * om

    degree = _neighbour_sum_framed(valid)
    ground = (degree - _neighbour_sum_framed(om_f)) * om  # edges from Ω to target pixels
    multigrid = Multigrid(Operator.unit(om, ground))
    x, its, res = _pcg(multigrid, pack(b), pack(t[..., 1:-1, 1:-1] * om), tol, max_iter)
    x = unpack(x)
    if float(ground.sum()) == 0:  # Ω is the whole image: fix the free constant
        shift = ((s[..., 1:-1, 1:-1] - x) * om).sum(dim=(-2, -1), keepdim=True) / om.sum()
        x = (x + shift) * om
    return x[0], its, res


def _solve_item_compiled(
    source: Tensor,
    target: Tensor,
    om_full: Tensor,
    box: tuple[int, int, int, int],
    mixed: bool,
    tol: float,
    max_iter: int,
) -> tuple[Tensor, int, float] | None:
    """:func:`_solve_item` by the compiled solver; None when Ω has no Dirichlet pixel."""
    from shared.blend import exact_compiled  # numba: imported on first use

    y0, y1, x0, x1 = box
    b, x, om, ground = exact_compiled.assemble(
        source.numpy(), target.numpy(), om_full.numpy(), y0, x0, y1 - y0, x1 - x0,
        mixed, MIXED_TIE_MARGIN,
    )
    if not ground.any():
        return None
    levels = exact_compiled.hierarchy(om, ground)

    def solve_channel(c: int) -> tuple[int, float]:
        return exact_compiled.solve_channel(*levels, b[c], x[c], tol, max_iter)

    # The compiled solver releases the GIL: channels run on torch's intra-op thread budget.
    threads = min(torch.get_num_threads(), b.shape[0])
    if threads > 1:
        results = list(_channel_pool(threads).map(solve_channel, range(b.shape[0])))
    else:
        results = [solve_channel(c) for c in range(b.shape[0])]
    its = max(r[0] for r in results)
    res = max(r[1] for r in results)
    return torch.from_numpy(x[:, 1:-1, 1:-1]), its, res


@cache
def _channel_pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="poisson-exact")


# A forked child (Celery prefork, DataLoader workers) inherits the pool but not its threads.
os.register_at_fork(after_in_child=_channel_pool.cache_clear)


def _framed(x: Tensor, box: tuple[int, int, int, int]) -> Tensor:
    """``x[..., y0−1:y1+1, x0−1:x1+1]``, zero beyond the image."""
    y0, y1, x0, x1 = box
    height, width = x.shape[-2:]
    crop = x[..., max(y0 - 1, 0) : min(y1 + 1, height), max(x0 - 1, 0) : min(x1 + 1, width)]
    pad = (max(1 - x0, 0), max(x1 + 1 - width, 0), max(1 - y0, 0), max(y1 + 1 - height, 0))
    return F.pad(crop, pad) if any(pad) else crop


def _neighbour_sum_framed(x: Tensor) -> Tensor:
    """Sum of the 4 neighbours of each interior pixel of a framed array."""
    return x[..., :-2, 1:-1] + x[..., 2:, 1:-1] + x[..., 1:-1, :-2] + x[..., 1:-1, 2:]


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Per-channel dot products of packed fields (1, C, 2, h, w/2) → (1, C, 1, 1, 1)."""
    # One BLAS dot per channel beats a batched matmul or a multiply-and-sum here.
    dots = [torch.dot(a[0, c].reshape(-1), b[0, c].reshape(-1)) for c in range(a.shape[1])]
    return torch.stack(dots).view(1, -1, 1, 1, 1)


def _pcg(
    multigrid: Multigrid, b: Tensor, x: Tensor, tol: float, max_iter: int
) -> tuple[Tensor, int, float]:
    """Preconditioned conjugate gradients, one system per channel (dim 1), packed vectors."""
    fine = multigrid.finest
    dims = (-3, -2, -1)
    b_norm = torch.linalg.vector_norm(b, dim=dims, keepdim=True)
    b_norm = torch.where(b_norm > 0, b_norm, 1)
    r = fine.residual(b, x)
    rel = float((torch.linalg.vector_norm(r, dim=dims, keepdim=True) / b_norm).max())
    its = 0
    if rel <= tol:
        return x, its, rel
    z = multigrid.v_cycle(r)
    p = z
    rz = _dot(r, z)
    while its < max_iter:
        its += 1
        q = fine.apply(p)
        pq = _dot(p, q)
        alpha = rz / torch.where(pq != 0, pq, 1)
        x = x.addcmul_(alpha, p)
        r = r.addcmul_(alpha, q, value=-1)
        rel = float((torch.linalg.vector_norm(r, dim=dims, keepdim=True) / b_norm).max())
        if rel <= tol:
            break
        z = multigrid.v_cycle(r)
        rz_new = _dot(r, z)
        beta = rz_new / torch.where(rz != 0, rz, 1)
        p = z.addcmul_(beta, p)
        rz = rz_new
    return x, its, rel
