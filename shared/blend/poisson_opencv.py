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
never mutates the mask and takes any channel count and float input. On the CPU the solve runs
as compiled loops around half the FFTs (:mod:`shared.blend.opencv_compiled`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from shared.blend.mask_box import mask_box

EROSION = 7  # a 3×3 kernel applied 3 times
# OpenCV compares exact integer gradients and gives ties to dst; with float inputs such as
# k/255 rounding would break those ties at random, so the source must win by a margin
# (1e-5 ≈ 0.003 grey levels).
_MIXED_TIE_MARGIN = 1e-5


def dst1(x: Tensor, dim: int = -1) -> Tensor:
    """Unnormalised DST-I along ``dim``: ``X_k = Σ_j x_j sin(π(j+1)(k+1)/(n+1))``.

    Applying it twice multiplies by ``(n+1)/2``. Computed with one real FFT of length
    ``n+1`` (Numerical Recipes' ``sinft``: fold, FFT, then the even outputs by a running sum),
    half the length of the usual odd-extension FFT. When ``n+1`` is odd, a real FFT costs as
    much as a complex one (MKL, pocketfft), so rows go in pairs through one complex FFT and
    the two spectra are separated afterwards: half the FFT work. FFT speed still depends on
    the prime factors of n+1.
    """
    if dim in (-1, x.ndim - 1):
        return _dst1_last(x.contiguous())
    return _dst1_last(x.movedim(dim, -1).contiguous()).movedim(-1, dim)


def _dst1_last(x: Tensor) -> Tensor:
    n = x.shape[-1]
    if n == 0:
        return x.clone()
    rows = x.numel() // n
    if n % 2 == 0 and rows >= 2:
        # n + 1 is odd: a real FFT of odd length costs as much as a complex one, so two rows
        # share one complex FFT (one as the real part, one as the imaginary part).
        flat = x.reshape(rows, n)
        pairs = rows // 2
        out = torch.empty_like(flat)
        _dst1_row_pairs(flat[: 2 * pairs], out[: 2 * pairs])
        if rows % 2:
            out[-1:] = _dst1_rows(flat[-1:])
        return out.view(x.shape)
    return _dst1_rows(x)


def fold_coefficients(n: int, x: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """The DST fold's weights ``(sin(πj/(n+1)) ± ½)·scale``, j = 1…n, in ``x``'s dtype/device."""
    j = torch.arange(1, n + 1, device=x.device, dtype=torch.float64)
    sin_j = torch.sin(j * (math.pi / (n + 1)))
    return ((sin_j + 0.5) * scale).to(x.dtype), ((sin_j - 0.5) * scale).to(x.dtype)


def _dst1_rows(x: Tensor) -> Tensor:
    n = x.shape[-1]
    plus, minus = fold_coefficients(n, x, 1.0)
    y = x.new_empty(*x.shape[:-1], n + 1)
    y[..., 0] = 0
    # y_j = sin(πj/(n+1))·(x_j + x_{n+1−j}) + (x_j − x_{n+1−j})/2
    torch.mul(x, plus, out=y[..., 1:])
    y[..., 1:].addcmul_(x.flip(-1), minus)
    spectrum = torch.view_as_real(torch.fft.rfft(y, dim=-1))
    out = torch.empty_like(x)
    n_even, n_odd = n // 2, (n + 1) // 2
    torch.neg(spectrum[..., 1 : n_even + 1, 1], out=out[..., 1::2])
    torch.cumsum(spectrum[..., :n_odd, 0], dim=-1, out=out[..., 0::2])
    out[..., 0::2] -= 0.5 * spectrum[..., :1, 0]
    return out


def _dst1_row_pairs(x: Tensor, out: Tensor) -> None:
    """:func:`_dst1_rows` of rows (2P, n), n even, into ``out``, with P complex FFTs."""
    n = x.shape[-1]
    size, half = n + 1, n // 2
    # The ½ that separating the two spectra needs is folded into the coefficients.
    plus, minus = fold_coefficients(n, x, 0.5)
    folded = x.new_empty(x.shape[0] // 2, size, 2)  # complex rows as (re, im) pairs
    folded[:, 0] = 0
    for part in (0, 1):
        rows, y = x[part::2], folded[:, 1:, part]
        torch.mul(rows, plus, out=y)
        y.addcmul_(rows.flip(-1), minus)
    z = torch.view_as_real(torch.fft.fft(torch.view_as_complex(folded), dim=-1))
    # With Z_k = A_k + i·B_k (A, B the two rows' spectra), A_k = (Z_k + conj Z_{N−k}) / 2 and
    # B_k = (Z_k − conj Z_{N−k}) / 2i: S = Z_k + Z_{N−k} and D = Z_k − Z_{N−k} hold
    # Re A = Re S, Im A = Im D, Re B = Im S, Im B = −Re D (halves already applied), k ≥ 1.
    head, mirrored = z[:, 1 : half + 1], z[:, size - half :].flip(1)
    # sums[:, k] = S_k for k = 1 … half, and sums[:, 0] = Z_0 (= S_0 / 2)
    sums = torch.empty_like(z[:, : half + 1])
    sums[:, 0] = z[:, 0]
    torch.add(head, mirrored, out=sums[:, 1:])
    delta = head - mirrored  # D_k, k = 1 … half
    pair = out.view(-1, 2, half, 2)  # [pair, row a|b, m, output 2m|2m+1]
    # odd outputs 2m+1 ← −Im A_{m+1}, −Im B_{m+1}
    torch.neg(delta[:, :, 1], out=pair[:, 0, :, 1])
    pair[:, 1, :, 1] = delta[:, :, 0]
    # even outputs 2m ← Re A_0 / 2 + Σ_{k=1..m} Re A_k, likewise B
    torch.cumsum(sums[:, :half], dim=1, out=pair[:, :, :, 0].transpose(1, 2))


def solve_dirichlet_box(rhs: Tensor) -> Tensor:
    """Solve the 5-point ``Δu = rhs`` on the last two dims, with ``u = 0`` just outside."""
    ny, nx = rhs.shape[-2:]
    if ny == 0 or nx == 0:
        return rhs.clone()
    # Eigenvalues of the two 1-D operators, divided by the DST's normalisation (two
    # transforms per axis multiply by (n+1)/2 each) so that one division does both.
    def eigenvalues(n: int) -> Tensor:
        k = torch.arange(1, n + 1, device=rhs.device, dtype=torch.float64)
        return ((2 * torch.cos(k * (math.pi / (n + 1))) - 2) / scale).to(rhs.dtype)

    scale = 4.0 / ((nx + 1) * (ny + 1))
    # Transforms run along the contiguous last dim; the transposes are explicit copies.
    spectrum = _dst1_last(rhs.contiguous()).transpose(-1, -2).contiguous()
    spectrum = _dst1_last(spectrum)
    spectrum /= eigenvalues(nx)[:, None] + eigenvalues(ny)[None, :]
    solution = _dst1_last(spectrum).transpose(-1, -2).contiguous()
    return _dst1_last(solution)


def blend_opencv(
    source: Tensor, target: Tensor, inside: Tensor, mixed: bool, out: Tensor, compiled: bool = False
) -> None:
    """Write the OpenCV-style blend into ``out`` (a copy of the target) item by item.

    ``source``/``target``: float32 (B, C, H, W); ``inside``: bool (B, 1, H, W). ``compiled``
    (CPU tensors): solve with :mod:`shared.blend.opencv_compiled` (float32/float64 ``out``;
    other dtypes take the tensor path).
    """
    compiled = compiled and out.dtype in (torch.float32, torch.float64)
    if compiled:
        from shared.blend import opencv_compiled  # numba: imported on first use
    _, _, height, width = target.shape
    if height < 3 or width < 3:
        return
    for i in range(target.shape[0]):
        box = mask_box(inside[i, 0, 1:-1, 1:-1])  # OpenCV zeroes the mask's 1-pixel border
        if box is None:
            continue
        y0, y1, x0, x1 = (v + 1 for v in box)
        if y1 - y0 < 3 or x1 - x0 < 3:
            continue  # the ROI is all frame: nothing to solve
        if compiled:
            opencv_compiled.solve_roi_into(
                source[i].numpy(), target[i].numpy(), inside[i, 0].numpy(), (y0, y1, x0, x1),
                mixed, _MIXED_TIE_MARGIN, out[i].numpy(),
            )
            continue
        eroded = _eroded_box(inside[i], y0, y1, x0, x1)
        solved = _solve_roi(
            source[i, :, y0:y1, x0:x1], target[i, :, y0:y1, x0:x1], eroded, mixed
        )
        out[i, :, y0 + 1 : y1 - 1, x0 + 1 : x1 - 1] = solved.clamp_(0, 1).to(out.dtype)


def _eroded_box(mask: Tensor, y0: int, y1: int, x0: int, x1: int) -> Tensor:
    """The 7×7-eroded mask on the box, using the real mask pixels around it (1, h, w)."""
    r = EROSION // 2
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
    for k in range(1, EROSION):  # a separable 7×7 minimum (shifted ANDs beat max_pool2d)
        rows &= region[:, :, k : k + w]
    eroded = rows[:, 0:h].clone()
    for k in range(1, EROSION):
        eroded &= rows[:, k : k + h]
    return eroded.to(torch.float32)


def _solve_roi(src: Tensor, dst: Tensor, eroded: Tensor, mixed: bool) -> Tensor:
    """Solve the ROI's interior (C, h−2, w−2) given src/dst (C, h, w) and the eroded mask."""
    # With u = dst + e the guidance G = ∇dst + m·(∇src − ∇dst) leaves Δe = div(m·(∇src − ∇dst))
    # and e = 0 on the frame (u = dst there): the frame terms vanish and ∇dst cancels.
    # Forward differences on the (h−1)×(w−1) block where both are defined inside the ROI.
    # Crops of permuted inputs (HWC arrays seen as CHW) are strided: copy once, then every
    # operation below runs on contiguous memory.
    src, dst = src.contiguous(), dst.contiguous()
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
