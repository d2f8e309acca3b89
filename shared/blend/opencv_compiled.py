"""Opencv mode's per-image solve on the CPU, compiled (numba) around two FFT passes.

Same equation as :mod:`shared.blend.poisson_opencv` (Δe = div(m·∇(src − dst)) on the ROI's
interior, e = 0 on its frame, result dst + e), solved the classic fast-Poisson way with one
sine transform instead of two: a DST-I along x diagonalises the x-part of the 5-point
Laplacian, which leaves for every x-frequency k an independent tridiagonal system along y,

    e_{i−1} + (μ_k − 2)·e_i + e_{i+1} = f_i,   μ_k = 2cos(πk/(n_x+1)) − 2,

strictly diagonally dominant, solved by Thomas' algorithm; a second DST-I along x goes back.
Why: the FFTs are most of the cost, and a ROI's sides often have large prime factors (the
30 % ellipse at 1024² has n+1 = 695 = 5·139 and 573 = 3·191, ~5× slower per point than a
smooth length); this halves the FFT work, and the rest (eroded mask, guidance, divergence,
folding the rows for the FFT, unfolding the spectra, the tridiagonal sweeps, adding dst,
clamping, writing the result) runs as a few compiled loops instead of ~40 tensor operations.

DST-I by one complex FFT of length n+1 per pair of rows: Numerical Recipes' ``sinft`` fold
(y_j = sin(πj/N)(x_j + x_{N−j}) + (x_j − x_{N−j})/2), two rows as the real and imaginary
parts, spectra separated afterwards (as ``poisson_opencv._dst1_row_pairs``).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

from shared.blend.poisson_opencv import EROSION, fold_coefficients

_EROSION_RADIUS = EROSION // 2

_jit = numba.njit(cache=True, nogil=True, fastmath=True)


@_jit
def _eroded(inside, y0, y1, x0, x1):  # noqa: ANN001, ANN202
    """The ROI's mask eroded by a 7×7 minimum, reading the real mask around the ROI; the
    image's border pixels count as outside, pixels beyond the image as inside (OpenCV's
    mask border and default erode border). uint8 (h, w)."""
    height, width = inside.shape
    r = _EROSION_RADIUS
    h, w = y1 - y0, x1 - x0
    region = np.ones((h + 2 * r, w + 2 * r), np.uint8)
    for i in range(h + 2 * r):
        y = y0 - r + i
        if y < 0 or y >= height:
            continue
        for j in range(w + 2 * r):
            x = x0 - r + j
            if x < 0 or x >= width:
                continue
            border = y == 0 or y == height - 1 or x == 0 or x == width - 1
            region[i, j] = 0 if border else inside[y, x]
    rows = np.empty((h + 2 * r, w), np.uint8)
    for i in range(h + 2 * r):
        for j in range(w):
            v = region[i, j]
            for k in range(1, 2 * r + 1):
                v &= region[i, j + k]
            rows[i, j] = v
    eroded = np.empty((h, w), np.uint8)
    for i in range(h):
        for j in range(w):
            v = rows[i, j]
            for k in range(1, 2 * r + 1):
                v &= rows[i + k, j]
            eroded[i, j] = v
    return eroded


@_jit
def _guidance_row(src, dst, m, c, y, x0, a, w, mixed, tie_margin, gx, gy):  # noqa: ANN001, ANN202
    """Masked forward-difference guidance of (src − dst) for ROI row a (image row y)."""
    for b in range(w - 1):
        x = x0 + b
        diff = src[c, y, x] - dst[c, y, x]
        ex = src[c, y, x + 1] - dst[c, y, x + 1] - diff
        ey = src[c, y + 1, x] - dst[c, y + 1, x] - diff
        keep = m[a, b] != 0
        if keep and mixed:
            dx = dst[c, y, x + 1] - dst[c, y, x]
            dy = dst[c, y + 1, x] - dst[c, y, x]
            keep = abs(dx + ex - dy - ey) > abs(dx - dy) + tie_margin
        gx[b] = ex if keep else 0.0
        gy[b] = ey if keep else 0.0


@_jit
def _fold_into(row, z, p, part, plus, minus):  # noqa: ANN001, ANN202
    """Fold a row (n) into the real (part 0) or imaginary (part 1) half of ``z[p]`` (n+1)."""
    n = row.shape[0]
    zr = z[p].view(np.float32)  # (re, im) interleaved
    zr[part] = 0.0
    for j in range(1, n + 1):
        zr[2 * j + part] = plus[j - 1] * row[j - 1] + minus[j - 1] * row[n - j]


@_jit
def folded_rhs(src, dst, inside, y0, y1, x0, x1, mixed, tie_margin, plus, minus):  # noqa: ANN001, ANN201
    """The right-hand side div(m·∇(src − dst)) on the ROI's interior, folded for the x-DST:
    complex64 (ceil(C·ny / 2), nx + 1), row r = c·ny + i, pairs of rows per complex row."""
    channels = src.shape[0]
    h, w = y1 - y0, x1 - x0
    ny, nx = h - 2, w - 2
    m = _eroded(inside, y0, y1, x0, x1)
    rows = channels * ny
    z = np.zeros(((rows + 1) // 2, nx + 1), np.complex64)
    gx_prev = np.empty(w - 1, np.float32)
    gy_prev = np.empty(w - 1, np.float32)
    gx = np.empty(w - 1, np.float32)
    gy = np.empty(w - 1, np.float32)
    row = np.empty(nx, np.float32)
    for c in range(channels):
        _guidance_row(src, dst, m, c, y0, x0, 0, w, mixed, tie_margin, gx_prev, gy_prev)
        for i in range(ny):
            _guidance_row(src, dst, m, c, y0 + i + 1, x0, i + 1, w, mixed, tie_margin, gx, gy)
            for j in range(nx):  # backward-difference divergence at interior pixel (i+1, j+1)
                row[j] = gx[j + 1] - gx[j] + gy[j + 1] - gy_prev[j + 1]
            r = c * ny + i
            _fold_into(row, z, r // 2, r % 2, plus, minus)
            gx, gx_prev = gx_prev, gx
            gy, gy_prev = gy_prev, gy
    return z


@_jit
def _unfold_row(z, p, part, out_row):  # noqa: ANN001, ANN202
    """DST-I of the row held in ``z[p]``'s real (part 0) or imaginary (part 1) half."""
    n = out_row.shape[0]
    size = n + 1
    acc = np.float64(z[p, 0].real if part == 0 else z[p, 0].imag)
    out_row[0] = acc
    k = 1
    while 2 * k - 1 < n:
        zk, zm = z[p, k], z[p, size - k]
        s = zk + zm
        d = zk - zm
        out_row[2 * k - 1] = -d.imag if part == 0 else d.real
        if 2 * k < n:
            acc += s.real if part == 0 else s.imag
            out_row[2 * k] = acc
        k += 1


@_jit
def unfold_solve_fold(z, channels, ny, nx, plus, minus):  # noqa: ANN001, ANN201
    """From the x-spectra of the right-hand side to the folded x-spectra of the solution:
    unfold, solve the tridiagonal system along y for every (channel, k), fold again."""
    f = np.empty((channels, ny, nx), np.float32)
    for c in range(channels):
        for i in range(ny):
            r = c * ny + i
            _unfold_row(z, r // 2, r % 2, f[c, i])
    # Thomas' algorithm, vectorised over k; cp = modified super-diagonal, shared by channels.
    # The two x-DSTs multiply by (nx + 1)/2: divide once here.
    scale = 2.0 / (nx + 1)
    cp = np.empty((ny, nx), np.float32)
    diag = np.empty(nx, np.float64)
    for k in range(nx):
        diag[k] = 2.0 * math.cos(math.pi * (k + 1) / (nx + 1)) - 4.0
    prev = np.zeros(nx, np.float64)
    for i in range(ny):
        for k in range(nx):
            prev[k] = 1.0 / (diag[k] - prev[k])
            cp[i, k] = prev[k]
    for c in range(channels):
        fc = f[c]
        for k in range(nx):
            fc[0, k] *= cp[0, k] * scale
        for i in range(1, ny):
            for k in range(nx):
                fc[i, k] = (fc[i, k] * scale - fc[i - 1, k]) * cp[i, k]
        for i in range(ny - 2, -1, -1):
            for k in range(nx):
                fc[i, k] -= cp[i, k] * fc[i + 1, k]
    z2 = np.zeros_like(z)
    for c in range(channels):
        for i in range(ny):
            r = c * ny + i
            _fold_into(f[c, i], z2, r // 2, r % 2, plus, minus)
    return z2


@_jit
def unfold_into(z, dst, out, y0, x0, ny, nx):  # noqa: ANN001, ANN201
    """``out[:, y0+1+i, x0+1+j] = clamp(dst + e, 0, 1)`` with e the DST-I of z's rows."""
    channels = dst.shape[0]
    row = np.empty(nx, np.float32)
    for c in range(channels):
        for i in range(ny):
            r = c * ny + i
            _unfold_row(z, r // 2, r % 2, row)
            y = y0 + 1 + i
            for j in range(nx):
                v = dst[c, y, x0 + 1 + j] + row[j]
                out[c, y, x0 + 1 + j] = min(max(v, 0.0), 1.0)


def solve_roi_into(
    src: np.ndarray,
    dst: np.ndarray,
    inside: np.ndarray,
    box: tuple[int, int, int, int],
    mixed: bool,
    tie_margin: float,
    out: np.ndarray,
) -> None:
    """Solve the ROI ``box = (y0, y1, x0, x1)`` (sides ≥ 3) and write its interior into
    ``out``. ``src``/``dst``/``out``: float32 (C, H, W), any strides; ``inside``: bool (H, W)."""
    y0, y1, x0, x1 = box
    ny, nx = y1 - y0 - 2, x1 - x0 - 2
    # the fold's weights, halved for the row pairs (as the tensor version's)
    plus, minus = (w.numpy() for w in fold_coefficients(nx, torch.empty(0), 0.5))
    z = folded_rhs(src, dst, inside, y0, y1, x0, x1, mixed, tie_margin, plus, minus)
    z = torch.fft.fft(torch.from_numpy(z), dim=-1).numpy()
    z = unfold_solve_fold(z, src.shape[0], ny, nx, plus, minus)
    z = torch.fft.fft(torch.from_numpy(z), dim=-1).numpy()
    unfold_into(z, dst, out, y0, x0, ny, nx)
