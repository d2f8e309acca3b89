"""``mode="opencv"``: ``cv2.seamlessClone(src, dst, mask, p, NORMAL_CLONE | MIXED_CLONE)``.

For same-size images pasted in place (``p`` = centre of the mask's bounding box), OpenCV 4/5
computes, per image (REFERENCE.md Part B1):

1. the mask with its 1-pixel image border forced to 0, and its bounding box (the ROI);
2. the mask eroded by a 3×3 kernel, 3 times (a 7×7 minimum), reading the real mask pixels
   around the ROI;
3. forward-difference gradients of src and dst, and the composite guidance field
   ``G = m_e·∇src + (1 − m_e)·∇dst`` (``m_e`` the eroded mask); with ``MIXED_CLONE`` the
   source gradient is kept where ``|∂x src − ∂y src| > |∂x dst − ∂y dst|`` (OpenCV's own
   per-pixel criterion), else the destination one;
4. ``div G`` by backward differences, and the Poisson equation ``Δu = div G`` on the whole
   ROI with the ROI's 1-pixel frame as Dirichlet boundary (= dst), solved by DST-I
   diagonalisation (divisor ``2cos(π(i+1)/(w−1)) + 2cos(π(j+1)/(h−1)) − 4``);
5. the ROI interior replaced by the solution (OpenCV truncates it to uint8; here it stays
   float, clamped to [0, 1]); every other pixel is dst.

This is a least-squares solve over the whole bounding box, so pixels outside the mask but
inside the box change too; ``mode="exact"`` is Pérez's formulation. Unlike OpenCV this
never mutates the mask and takes any channel count and float input.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_EROSION = 7  # a 3×3 kernel applied 3 times
# OpenCV compares exact integer gradients and gives ties to dst; with float inputs such as
# k/255 rounding would break those ties at random, so the source must win by a margin
# (1e-5 ≈ 0.003 grey levels).
_MIXED_TIE_MARGIN = 1e-5


def dst1(x: Tensor, dim: int = -1) -> Tensor:
    """Unnormalised DST-I along ``dim``: ``X_k = Σ_j x_j sin(π(j+1)(k+1)/(n+1))``.

    Applying it twice multiplies by ``(n+1)/2``. Computed with one real FFT of length
    ``n+1`` (Numerical Recipes' ``sinft``: fold, FFT, then the odd outputs by a running sum),
    half the length of the usual odd-extension FFT; FFT speed depends on the factors of n+1.
    """
    if dim in (-1, x.ndim - 1):
        return _dst1_last(x.contiguous())
    return _dst1_last(x.movedim(dim, -1).contiguous()).movedim(-1, dim)


def _dst1_last(x: Tensor) -> Tensor:
    n = x.shape[-1]
    if n == 0:
        return x.clone()
    j = torch.arange(1, n + 1, device=x.device, dtype=torch.float64)
    sin_j = torch.sin(j * (math.pi / (n + 1)))
    y = x.new_empty(*x.shape[:-1], n + 1)
    y[..., 0] = 0
    # y_j = sin(πj/(n+1))·(x_j + x_{n+1−j}) + (x_j − x_{n+1−j})/2
    torch.mul(x, (sin_j + 0.5).to(x.dtype), out=y[..., 1:])
    y[..., 1:].addcmul_(x.flip(-1), (sin_j - 0.5).to(x.dtype))
    spectrum = torch.view_as_real(torch.fft.rfft(y, dim=-1))
    out = torch.empty_like(x)
    n_even, n_odd = n // 2, (n + 1) // 2
    torch.neg(spectrum[..., 1 : n_even + 1, 1], out=out[..., 1::2])
    torch.cumsum(spectrum[..., :n_odd, 0], dim=-1, out=out[..., 0::2])
    out[..., 0::2] -= 0.5 * spectrum[..., :1, 0]
    return out


def solve_dirichlet_box(rhs: Tensor) -> Tensor:
    """Solve the 5-point ``Δu = rhs`` on the last two dims, with ``u = 0`` just outside."""
    ny, nx = rhs.shape[-2:]
    if ny == 0 or nx == 0:
        return rhs.clone()
    ky = torch.arange(1, ny + 1, device=rhs.device, dtype=torch.float64)
    kx = torch.arange(1, nx + 1, device=rhs.device, dtype=torch.float64)
    eig = (2 * torch.cos(ky * (math.pi / (ny + 1))) - 2)[:, None] + (
        2 * torch.cos(kx * (math.pi / (nx + 1))) - 2
    )[None, :]
    scale = 4.0 / ((nx + 1) * (ny + 1))
    # Transforms run along the contiguous last dim; the transposes are explicit copies.
    spectrum = _dst1_last(rhs.contiguous()).transpose(-1, -2).contiguous()
    spectrum = _dst1_last(spectrum)
    spectrum *= (scale / eig).T.to(rhs.dtype)
    solution = _dst1_last(spectrum).transpose(-1, -2).contiguous()
    return _dst1_last(solution)


def blend_opencv(source: Tensor, target: Tensor, inside: Tensor, mixed: bool, out: Tensor) -> None:
    """Write the OpenCV-style blend into ``out`` (a copy of the target) item by item.

    ``source``/``target``: float32 (B, C, H, W); ``inside``: bool (B, 1, H, W).
    """
    _, _, height, width = target.shape
    if height < 3 or width < 3:
        return
    inner = inside[:, 0, 1:-1, 1:-1]  # OpenCV zeroes the mask's 1-pixel image border
    rows_any, cols_any = inner.any(dim=2), inner.any(dim=1)
    for i in range(target.shape[0]):
        rows = torch.nonzero(rows_any[i]).flatten()
        if rows.numel() == 0:
            continue
        cols = torch.nonzero(cols_any[i]).flatten()
        y0, y1 = int(rows[0]) + 1, int(rows[-1]) + 2
        x0, x1 = int(cols[0]) + 1, int(cols[-1]) + 2
        if y1 - y0 < 3 or x1 - x0 < 3:
            continue  # the ROI is all frame: nothing to solve
        eroded = _eroded_box(inside[i], y0, y1, x0, x1)
        solved = _solve_roi(
            source[i, :, y0:y1, x0:x1], target[i, :, y0:y1, x0:x1], eroded, mixed
        )
        out[i, :, y0 + 1 : y1 - 1, x0 + 1 : x1 - 1] = solved.clamp_(0, 1).to(out.dtype)


def _eroded_box(mask: Tensor, y0: int, y1: int, x0: int, x1: int) -> Tensor:
    """The 7×7-eroded mask on the box, using the real mask pixels around it (1, h, w)."""
    r = _EROSION // 2
    height, width = mask.shape[-2:]
    ey0, ey1, ex0, ex1 = max(y0 - r, 0), min(y1 + r, height), max(x0 - r, 0), min(x1 + r, width)
    region = mask[:, ey0:ey1, ex0:ex1].clone()
    # The image border of the mask is 0 (as in OpenCV); beyond the image, the border does
    # not erode (OpenCV's default erode border), hence padding with 1.
    if ey0 == 0:
        region[:, 0, :] = False
    if ey1 == height:
        region[:, -1, :] = False
    if ex0 == 0:
        region[:, :, 0] = False
    if ex1 == width:
        region[:, :, -1] = False
    pad = (r - (x0 - ex0), r - (ex1 - x1), r - (y0 - ey0), r - (ey1 - y1))
    region = F.pad(region.to(torch.uint8), pad, value=1).bool()
    h, w = y1 - y0, x1 - x0
    rows = region[:, :, 0:w].clone()
    for k in range(1, _EROSION):  # a separable 7×7 minimum (shifted ANDs beat max_pool2d)
        rows &= region[:, :, k : k + w]
    eroded = rows[:, 0:h].clone()
    for k in range(1, _EROSION):
        eroded &= rows[:, k : k + h]
    return eroded.to(torch.float32)


def _solve_roi(src: Tensor, dst: Tensor, eroded: Tensor, mixed: bool) -> Tensor:
    """Solve the ROI's interior (C, h−2, w−2) given src/dst (C, h, w) and the eroded mask."""
    # With u = dst + e the guidance G = ∇dst + m·(∇src − ∇dst) leaves Δe = div(m·(∇src − ∇dst))
    # and e = 0 on the frame (u = dst there): the frame terms vanish and ∇dst cancels.
    # Forward differences on the (h−1)×(w−1) block where both are defined inside the ROI.
    m = eroded[:, :-1, :-1]
    diff = src - dst
    gx = diff[:, :-1, 1:] - diff[:, :-1, :-1]
    gy = diff[:, 1:, :-1] - diff[:, :-1, :-1]
    if mixed:
        gdx = dst[:, :-1, 1:] - dst[:, :-1, :-1]
        gdy = dst[:, 1:, :-1] - dst[:, :-1, :-1]
        # OpenCV's criterion |∂x src − ∂y src| > |∂x dst − ∂y dst|, with ∇src = ∇dst + g.
        m = m * ((gdx + gx - gdy - gy).abs() > (gdx - gdy).abs() + _MIXED_TIE_MARGIN)
    gx.mul_(m)
    gy.mul_(m)
    # Backward-difference divergence at the interior pixels.
    rhs = gx[:, 1:, 1:] - gx[:, 1:, :-1]
    rhs += gy[:, 1:, 1:]
    rhs -= gy[:, :-1, 1:]
    return solve_dirichlet_box(rhs).add_(dst[:, 1:-1, 1:-1])
