"""Exact mode's per-image solve on the CPU, compiled (numba): the system of
:mod:`shared.blend.poisson_exact` and the solver of :mod:`shared.blend.multigrid` written as
loops.

Why a second implementation: on the CPU the tensor version spends most of its time
dispatching operations, not computing — a multigrid V-cycle is ~70 small tensor operations
per level, and a mouth-sized box (226×102) has six levels, so one image costs thousands of
dispatches (~40 ms) for a few million flops. Here the assembly of the system, each V-cycle
and the conjugate-gradient loop are single compiled calls over the box. The tensor version
stays for CUDA.

Same mathematics as the tensor version: unknowns are the mask pixels of the bounding box
(sides even, cells beyond the image inert); the finest operator couples 4-neighbours inside
the mask with weight 1 and has ``ground`` edges to target pixels; coarse grids aggregate 2×2
cells with the same scaling (½ Galerkin, ¼ for averaging), two red-black Gauss-Seidel sweeps
before and after (reverse colour order after, so the V-cycle is symmetric), a dense Cholesky
solve on the coarsest grid (≤ 256 cells). Differences: each channel is a separate
conjugate-gradient run that stops at its own tolerance (the tensor version runs the channels
in lock-step), and dot products accumulate in float64. A mask without any Dirichlet pixel (Ω is
the whole image) has a singular system and is left to the tensor version.

Every grid is stored with a frame of zero cells around it (arrays (h+2, w+2)): off-mask cells
have zero couplings, zero diagonal inverse and zero right-hand side, so the stencil loops run
without bounds checks or mask tests and vectorise.
"""

from __future__ import annotations

import numba
import numpy as np

from shared.blend.multigrid import COARSEST_CELLS, SWEEPS

_jit = numba.njit(cache=True, nogil=True, fastmath=True)


@_jit
def assemble(src, tgt, inside, y0, x0, h, w, mixed, tie_margin):  # noqa: ANN001, ANN201
    """The system on the box ``[y0, y0+h) × [x0, x0+w)`` (h, w even; may overhang the image).

    ``src``/``tgt``: float32 (C, H, W), any strides; ``inside``: bool (H, W). Returns
    ``(b, x, om, ground)``, framed: right-hand sides and the initial guess (the target)
    (C, h+2, w+2), the mask as 0/1 floats and each mask cell's number of target neighbours
    (h+2, w+2).
    """
    channels, height, width = tgt.shape
    b = np.zeros((channels, h + 2, w + 2), np.float32)
    x = np.zeros((channels, h + 2, w + 2), np.float32)
    om = np.zeros((h + 2, w + 2), np.float32)
    ground = np.zeros((h + 2, w + 2), np.float32)
    for i in range(min(h, height - y0)):
        y = y0 + i
        for j in range(min(w, width - x0)):
            xx = x0 + j
            if not inside[y, xx]:
                continue
            om[i + 1, j + 1] = 1.0
            for k in range(4):
                qy = y - 1 if k == 0 else (y + 1 if k == 1 else y)
                qx = xx - 1 if k == 2 else (xx + 1 if k == 3 else xx)
                if qy < 0 or qy >= height or qx < 0 or qx >= width:
                    continue  # no neighbour beyond the border (zero flux)
                outside = not inside[qy, qx]
                if outside:
                    ground[i + 1, j + 1] += 1.0
                for c in range(channels):
                    v = src[c, y, xx] - src[c, qy, qx]
                    if mixed:
                        tv = tgt[c, y, xx] - tgt[c, qy, qx]
                        if abs(tv) > abs(v) + tie_margin:
                            v = tv
                    if outside:
                        v += tgt[c, qy, qx]
                    b[c, i + 1, j + 1] += v
            for c in range(channels):
                x[c, i + 1, j + 1] = tgt[c, y, xx]
    return b, x, om, ground


@_jit
def _unit_couplings(om, wx, wy):  # noqa: ANN001, ANN202
    """Weight 1 between 4-neighbours of the mask: ``wx`` to the right, ``wy`` below."""
    for i in range(1, om.shape[0] - 1):
        for j in range(1, om.shape[1] - 1):
            wx[i, j] = om[i, j] * om[i, j + 1]
            wy[i, j] = om[i, j] * om[i + 1, j]


@_jit
def _diagonal_into(om, wx, wy, ground, d, d_inv):  # noqa: ANN001, ANN202
    """The diagonal ``d = ground + Σ couplings`` and ``d_inv = om / d`` (0 off the mask)."""
    for i in range(1, om.shape[0] - 1):
        for j in range(1, om.shape[1] - 1):
            d[i, j] = ground[i, j] + wx[i, j - 1] + wx[i, j] + wy[i - 1, j] + wy[i, j]
            if om[i, j] > 0 and d[i, j] > 0:
                d_inv[i, j] = 1.0 / d[i, j]


@_jit
def _coarsen_into(om, wx, wy, ground, omc, wxc, wyc, gc):  # noqa: ANN001, ANN202
    """2×2 aggregation (½ Galerkin, ¼ for averaging) of a grid with even sides into the
    (zeroed) coarse arrays."""
    for i in range(1, (om.shape[0] - 2) // 2 + 1):
        for j in range(1, (om.shape[1] - 2) // 2 + 1):
            a, b = 2 * i - 1, 2 * j - 1  # the block's top-left fine cell
            omc[i, j] = max(max(om[a, b], om[a, b + 1]), max(om[a + 1, b], om[a + 1, b + 1]))
            gc[i, j] = 0.125 * (ground[a, b] + ground[a, b + 1] + ground[a + 1, b]
                                + ground[a + 1, b + 1])
            wxc[i, j] = 0.125 * (wx[a, b + 1] + wx[a + 1, b + 1])
            wyc[i, j] = 0.125 * (wy[a + 1, b] + wy[a + 1, b + 1])


@_jit
def _matvec(wx, wy, d, x, out):  # noqa: ANN001, ANN202
    """``out = A x`` (x is 0 off the mask, and so is the result)."""
    for i in range(1, x.shape[0] - 1):
        for j in range(1, x.shape[1] - 1):
            out[i, j] = d[i, j] * x[i, j] - (
                wx[i, j - 1] * x[i, j - 1] + wx[i, j] * x[i, j + 1]
                + wy[i - 1, j] * x[i - 1, j] + wy[i, j] * x[i + 1, j]
            )


@_jit
def _residual(wx, wy, d, x, r, out):  # noqa: ANN001, ANN202
    """``out = r − A x``."""
    for i in range(1, x.shape[0] - 1):
        for j in range(1, x.shape[1] - 1):
            out[i, j] = r[i, j] - d[i, j] * x[i, j] + (
                wx[i, j - 1] * x[i, j - 1] + wx[i, j] * x[i, j + 1]
                + wy[i - 1, j] * x[i - 1, j] + wy[i, j] * x[i + 1, j]
            )


@_jit
def _sweep(wx, wy, d_inv, x, r, first):  # noqa: ANN001, ANN202
    """Red-black Gauss-Seidel, in place: a half-sweep over the cells with (i + j) % 2 ==
    first, then over the others. One pass over the rows: row i's first colour, then row
    i−1's second colour (whose neighbours are all updated by then)."""
    h, w = x.shape[0] - 2, x.shape[1] - 2
    for i in range(1, h + 2):
        for t in range(2):
            row, colour = i - t, first if t == 0 else 1 - first
            if row < 1 or row > h:
                continue
            for j in range(1 + (row + 1 + colour) % 2, w + 1, 2):
                x[row, j] = d_inv[row, j] * (
                    r[row, j] + wx[row, j - 1] * x[row, j - 1] + wx[row, j] * x[row, j + 1]
                    + wy[row - 1, j] * x[row - 1, j] + wy[row, j] * x[row + 1, j]
                )


@_jit
def _sweep_unit(d_inv, x, r, first):  # noqa: ANN001, ANN202
    """:func:`_sweep` on the finest grid, where every coupling is 1: x is 0 off the mask, so
    the weights need not be read."""
    h, w = x.shape[0] - 2, x.shape[1] - 2
    for i in range(1, h + 2):
        for t in range(2):
            row, colour = i - t, first if t == 0 else 1 - first
            if row < 1 or row > h:
                continue
            for j in range(1 + (row + 1 + colour) % 2, w + 1, 2):
                x[row, j] = d_inv[row, j] * (
                    r[row, j] + x[row, j - 1] + x[row, j + 1] + x[row - 1, j] + x[row + 1, j]
                )


@_jit
def _restrict(res, coarse):  # noqa: ANN001, ANN202
    """2×2 block means of ``res`` into ``coarse`` (its padding stays 0)."""
    for i in range(1, (res.shape[0] - 2) // 2 + 1):
        for j in range(1, (res.shape[1] - 2) // 2 + 1):
            a, b = 2 * i - 1, 2 * j - 1
            coarse[i, j] = 0.25 * (res[a, b] + res[a, b + 1] + res[a + 1, b] + res[a + 1, b + 1])


@_jit
def _add_prolongated(om, x, coarse):  # noqa: ANN001, ANN202
    """``x += om · coarse`` repeated over 2×2 blocks."""
    for i in range(1, x.shape[0] - 1):
        for j in range(1, x.shape[1] - 1):
            x[i, j] += om[i, j] * coarse[(i + 1) // 2, (j + 1) // 2]


@_jit
def _coarsest_factor(om, wx, wy, d):  # noqa: ANN001, ANN202
    """The coarsest grid's mask cells (flat indices) and the Cholesky factor of their matrix."""
    w = om.shape[1]
    index = np.full(om.size, -1, np.int64)
    n = 0
    for p in range(om.size):
        if om.flat[p] > 0:
            index[p] = n
            n += 1
    cells = np.empty(n, np.int64)
    for p in range(om.size):
        if index[p] >= 0:
            cells[index[p]] = p
    a = np.zeros((n, n))
    for k in range(n):
        p = cells[k]
        a[k, k] = d.flat[p]
        right, below = index[p + 1], index[p + w]
        if right >= 0:
            a[k, right] = -wx.flat[p]
            a[right, k] = -wx.flat[p]
        if below >= 0:
            a[k, below] = -wy.flat[p]
            a[below, k] = -wy.flat[p]
    for k in range(n):  # in place: the lower triangle becomes L with A = L Lᵀ
        for m in range(k):
            a[k, k] -= a[k, m] * a[k, m]
        a[k, k] = np.sqrt(a[k, k])
        for i in range(k + 1, n):
            for m in range(k):
                a[i, k] -= a[i, m] * a[k, m]
            a[i, k] /= a[k, k]
    return cells, a


@_jit
def _coarsest_solve(cells, factor, r, x):  # noqa: ANN001, ANN202
    n = cells.shape[0]
    y = np.empty(n)
    for k in range(n):  # L y = r
        s = np.float64(r.flat[cells[k]])
        for m in range(k):
            s -= factor[k, m] * y[m]
        y[k] = s / factor[k, k]
    for k in range(n - 1, -1, -1):  # Lᵀ z = y
        s = y[k]
        for m in range(k + 1, n):
            s -= factor[m, k] * y[m]
        y[k] = s / factor[k, k]
    for k in range(n):
        x.flat[cells[k]] = y[k]


@_jit
def _grid(buffer, layout, level):  # noqa: ANN001, ANN202
    """Level ``level``'s (framed) 2-D view of a flat per-hierarchy buffer."""
    start, h, w = layout[level, 0], layout[level, 1], layout[level, 2]
    return buffer[start : start + h * w].reshape((h, w))


@_jit
def _v_cycle(layout, om, wx, wy, d, d_inv, x, r, tmp, cells, factor):  # noqa: ANN001, ANN202
    """One V-cycle for ``A x = r`` on level 0 (result in x's level 0). Every argument but
    ``layout``, ``cells`` and ``factor`` is a flat buffer holding all levels."""
    depth = layout.shape[0] - 1
    for lvl in range(depth):
        xl, rl = _grid(x, layout, lvl), _grid(r, layout, lvl)
        xl[:] = 0.0
        for _ in range(SWEEPS):
            if lvl == 0:
                _sweep_unit(_grid(d_inv, layout, 0), xl, rl, 0)
            else:
                _sweep(_grid(wx, layout, lvl), _grid(wy, layout, lvl),
                       _grid(d_inv, layout, lvl), xl, rl, 0)
        res = _grid(tmp, layout, lvl)
        _residual(_grid(wx, layout, lvl), _grid(wy, layout, lvl), _grid(d, layout, lvl),
                  xl, rl, res)
        _restrict(res, _grid(r, layout, lvl + 1))
    _coarsest_solve(cells, factor, _grid(r, layout, depth), _grid(x, layout, depth))
    for lvl in range(depth - 1, -1, -1):
        xl, rl = _grid(x, layout, lvl), _grid(r, layout, lvl)
        _add_prolongated(_grid(om, layout, lvl), xl, _grid(x, layout, lvl + 1))
        for _ in range(SWEEPS):
            if lvl == 0:
                _sweep_unit(_grid(d_inv, layout, 0), xl, rl, 1)
            else:
                _sweep(_grid(wx, layout, lvl), _grid(wy, layout, lvl),
                       _grid(d_inv, layout, lvl), xl, rl, 1)


@_jit
def _dot(a, b):  # noqa: ANN001, ANN202
    s = 0.0
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            s += np.float64(a[i, j]) * np.float64(b[i, j])
    return s


@_jit
def _axpy(alpha, x, y):  # noqa: ANN001, ANN202
    """``y += alpha · x``."""
    a = np.float32(alpha)
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            y[i, j] += a * x[i, j]


@_jit
def _xpay(x, beta, y):  # noqa: ANN001, ANN202
    """``y = x + beta · y``."""
    b = np.float32(beta)
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            y[i, j] = x[i, j] + b * y[i, j]


@_jit
def _layout(h, w):  # noqa: ANN001, ANN202
    """Per level: start in the flat buffers and framed sides. Level 0 is h×w (even); each
    next level halves it, rounded up to even sides unless it is the coarsest (≤ 256 cells)."""
    sides = [(h, w)]
    while sides[-1][0] * sides[-1][1] > COARSEST_CELLS:
        hc, wc = sides[-1][0] // 2, sides[-1][1] // 2
        if hc * wc > COARSEST_CELLS:
            hc, wc = hc + hc % 2, wc + wc % 2
        sides.append((hc, wc))
    layout = np.empty((len(sides), 3), np.int64)
    start = 0
    for level in range(len(sides)):
        layout[level, 0] = start
        layout[level, 1] = sides[level][0] + 2
        layout[level, 2] = sides[level][1] + 2
        start += layout[level, 1] * layout[level, 2]
    return layout, start


@_jit
def hierarchy(om0, ground0):  # noqa: ANN001, ANN201
    """The multigrid hierarchy of the system from :func:`assemble`: (layout, om, wx, wy, d,
    d_inv, cells, factor) — flat per-level buffers and the coarsest Cholesky factor. Needs
    a cell with ground > 0."""
    layout, size = _layout(om0.shape[0] - 2, om0.shape[1] - 2)
    om, wx, wy = np.zeros(size, np.float32), np.zeros(size, np.float32), np.zeros(size, np.float32)
    ground, d, d_inv = (
        np.zeros(size, np.float32), np.zeros(size, np.float32), np.zeros(size, np.float32)
    )
    _grid(om, layout, 0)[:] = om0
    _grid(ground, layout, 0)[:] = ground0
    _unit_couplings(om0, _grid(wx, layout, 0), _grid(wy, layout, 0))
    for lvl in range(layout.shape[0]):
        if lvl > 0:
            _coarsen_into(
                _grid(om, layout, lvl - 1), _grid(wx, layout, lvl - 1),
                _grid(wy, layout, lvl - 1), _grid(ground, layout, lvl - 1),
                _grid(om, layout, lvl), _grid(wx, layout, lvl), _grid(wy, layout, lvl),
                _grid(ground, layout, lvl),
            )
        _diagonal_into(_grid(om, layout, lvl), _grid(wx, layout, lvl), _grid(wy, layout, lvl),
                       _grid(ground, layout, lvl), _grid(d, layout, lvl),
                       _grid(d_inv, layout, lvl))
    last = layout.shape[0] - 1
    cells, factor = _coarsest_factor(_grid(om, layout, last), _grid(wx, layout, last),
                                     _grid(wy, layout, last), _grid(d, layout, last))
    return layout, om, wx, wy, d, d_inv, cells, factor


@_jit
def solve_channel(layout, om, wx, wy, d, d_inv, cells, factor, b, x, tol, max_iter):  # noqa: ANN001, ANN201
    """Preconditioned CG for one channel's ``A x = b`` (framed (h+2, w+2); x, the initial
    guess, is updated in place), given :func:`hierarchy`. Returns (iterations, relative
    residual ‖b − Ax‖/‖b‖)."""
    size = om.shape[0]
    xs, rs, tmp = np.zeros(size, np.float32), np.zeros(size, np.float32), np.zeros(size, np.float32)
    wx0, wy0, d0 = _grid(wx, layout, 0), _grid(wy, layout, 0), _grid(d, layout, 0)
    z, r0 = _grid(xs, layout, 0), _grid(rs, layout, 0)
    r, q, p = np.zeros_like(b), np.zeros_like(b), np.zeros_like(b)
    b_norm = np.sqrt(_dot(b, b))
    if b_norm == 0:
        b_norm = 1.0
    _residual(wx0, wy0, d0, x, b, r)
    rel = np.sqrt(_dot(r, r)) / b_norm
    its = 0
    if rel <= tol:
        return its, rel
    r0[:] = r
    _v_cycle(layout, om, wx, wy, d, d_inv, xs, rs, tmp, cells, factor)
    p[:] = z
    rz = _dot(r, z)
    while its < max_iter:
        its += 1
        _matvec(wx0, wy0, d0, p, q)
        pq = _dot(p, q)
        alpha = rz / pq if pq != 0 else 0.0
        _axpy(alpha, p, x)
        _axpy(-alpha, q, r)
        rel = np.sqrt(_dot(r, r)) / b_norm
        if rel <= tol:
            break
        r0[:] = r
        _v_cycle(layout, om, wx, wy, d, d_inv, xs, rs, tmp, cells, factor)
        rz_new = _dot(r, z)
        _xpay(z, rz_new / rz if rz != 0 else 0.0, p)
        rz = rz_new
    return its, rel
