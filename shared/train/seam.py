"""Seam measures: what a composite adds to the original along the outline of the edit mask.

Naive compositing ``E·m + O·(1 − m)`` adds ``(E − O)·m`` to the original O: wherever the edited
image E differs in colour or illumination, this leaves a colour step, a halo over the soft
ramp of the mask and a hard step where a thresholded mask drops to 0. Poisson blending keeps
E's gradients but makes the composite meet O continuously on the 0.5 contour.

Both measures look at ``D = lowpass(R − O)`` for a result R, with a Gaussian low-pass
(σ = ``sigma`` pixels, default ``max(1.5, side/170)``) that removes the texture (noise,
sharpening) any re-rendered image carries, so what remains are colour and illumination
differences and the edit's own shapes:

- :func:`seam_score` — mean of ‖∇D‖² (forward differences, summed over x/y and the colour
  channels) over the boundary band, ×1000: the gradient energy the composite adds along the
  outline. The band is the soft mask's transition zone (0.02 < m < 0.98) plus the 0.5
  contour, both grown by ``width`` pixels (default ``max(2, side/64)``).
- :func:`colour_mismatch` — mean of Σ_c |D_c| over the inner ring (mask ≥ 0.5, within
  ``width`` pixels of the 0.5 contour): how far the composite's colours just inside the
  outline are from the original's. 0 for a perfectly seamless transition.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def _defaults(mask: Tensor, width: int | None, sigma: float | None) -> tuple[int, float]:
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask: expected (B, 1, H, W), got {tuple(mask.shape)}")
    side = mask.shape[-1]
    return (max(2, side // 64) if width is None else int(width),
            max(1.5, side / 170) if sigma is None else float(sigma))


def _grow(region: Tensor, width: int) -> Tensor:
    return F.max_pool2d(region, kernel_size=2 * width + 1, stride=1, padding=width)


def contour_ring(mask: Tensor, width: int) -> Tensor:
    """Float (B, 1, H, W): pixels within ``width`` of the mask's 0.5 contour."""
    inside = (mask >= 0.5).to(mask.dtype)
    return _grow(inside, width) - (1 - _grow(1 - inside, width))


def boundary_band(mask: Tensor, width: int | None = None) -> Tensor:
    """Bool (B, 1, H, W): transition zone of the soft mask plus the 0.5 contour, grown."""
    width, _ = _defaults(mask, width, None)
    zone = ((mask > 0.02) & (mask < 0.98)).to(mask.dtype)
    return (_grow(zone, width) > 0) | (contour_ring(mask.float(), width) > 0)


def _lowpass_difference(result: Tensor, original: Tensor, sigma: float) -> Tensor:
    from shared.editing.pipeline import gaussian_blur

    if result.shape != original.shape:
        raise ValueError(
            f"original: shape {tuple(original.shape)} differs from result {tuple(result.shape)}"
        )
    return gaussian_blur(result.double() - original.double(), sigma)


def seam_score(result: Tensor, original: Tensor, mask: Tensor, width: int | None = None,
               sigma: float | None = None) -> Tensor:
    """Per image (B,): mean ‖∇ lowpass(R − O)‖² over the boundary band, ×1000."""
    width, sigma = _defaults(mask, width, sigma)
    diff = _lowpass_difference(result, original, sigma)
    gx = F.pad(diff[..., :, 1:] - diff[..., :, :-1], (0, 1, 0, 0))
    gy = F.pad(diff[..., 1:, :] - diff[..., :-1, :], (0, 0, 0, 1))
    energy = (gx * gx + gy * gy).sum(dim=1, keepdim=True)
    band = boundary_band(mask.double(), width).to(energy.dtype)
    return ((energy * band).sum(dim=(1, 2, 3)) / band.sum(dim=(1, 2, 3)).clamp_min(1) * 1000
            ).float()


def colour_mismatch(result: Tensor, original: Tensor, mask: Tensor, width: int | None = None,
                    sigma: float | None = None) -> Tensor:
    """Per image (B,): mean Σ_c |lowpass(R − O)| on the inner ring of the 0.5 contour."""
    width, sigma = _defaults(mask, width, sigma)
    diff = _lowpass_difference(result, original, sigma).abs().sum(dim=1, keepdim=True)
    ring = (contour_ring(mask.double(), width) > 0) & (mask >= 0.5)
    ring = ring.to(diff.dtype)
    return ((diff * ring).sum(dim=(1, 2, 3)) / ring.sum(dim=(1, 2, 3)).clamp_min(1)).float()
