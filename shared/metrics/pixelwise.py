"""PSNR and MAE between batches of images in [0, 1], one value per image.

Both are computed over all channels and pixels of an image, in float64 whatever the input
dtype (see ``METRIC_DTYPE``). PSNR of two identical images is ``inf``, as in scikit-image.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_image_pair(outputs: Tensor, references: Tensor, min_size: int = 1) -> None:
    """Raise ValueError unless both are floating (B,C,H,W) tensors of one shape and device."""
    for name, images in (("outputs", outputs), ("references", references)):
        if not isinstance(images, Tensor):
            raise ValueError(f"{name}: expected a torch.Tensor, got {type(images).__name__}")
        if images.ndim != 4:
            raise ValueError(f"{name}: expected shape (B, C, H, W), got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise ValueError(
                f"{name}: expected a floating-point tensor in [0, 1], got {images.dtype}"
            )
        if min(images.shape[-2:]) < min_size:
            raise ValueError(
                f"{name}: images must be at least {min_size}×{min_size}, got {tuple(images.shape)}"
            )
    if outputs.shape != references.shape:
        raise ValueError(
            f"outputs and references differ in shape: {tuple(outputs.shape)} vs "
            f"{tuple(references.shape)}"
        )
    if outputs.device != references.device:
        raise ValueError(
            f"outputs and references are on different devices: {outputs.device} vs "
            f"{references.device}"
        )


# In float32, E[x²] − E[x]² (SSIM) and sums over a megapixel lose digits and the results
# drift ~1e-5 from scikit-image; float64 costs little next to the networks.
METRIC_DTYPE = torch.float64


def psnr(outputs: Tensor, references: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB, ``10·log10(data_range² / MSE)``, shape (B,)."""
    check_image_pair(outputs, references)
    error = outputs.to(METRIC_DTYPE) - references.to(METRIC_DTYPE)
    mse = error.square().flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range**2 / mse)


def mae(outputs: Tensor, references: Tensor) -> Tensor:
    """Mean absolute error over channels and pixels, shape (B,)."""
    check_image_pair(outputs, references)
    return (outputs.to(METRIC_DTYPE) - references.to(METRIC_DTYPE)).abs().flatten(1).mean(dim=1)
