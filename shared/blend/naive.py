"""Naive composites: the edited image pasted over the original through the mask — soft, or
binarised at 0.5 as Poisson blending does."""

from __future__ import annotations

import torch
from torch import Tensor

from shared.blend.validation import check_image, check_mask, check_same_shape

MASK_THRESHOLD = 0.5  # Poisson blending's (and the binary composite's) Ω = {mask ≥ 0.5}


def naive_blend(original: Tensor, edited: Tensor, mask: Tensor) -> Tensor:
    """``edited·m + original·(1 − m)``.

    ``original`` and ``edited``: (B, C, H, W) in [0, 1]; ``mask``: (B, 1, H, W), float in
    [0, 1] or bool. The result has ``original``'s dtype; where ``m = 0`` it equals
    ``original`` exactly and where ``m = 1`` it equals ``edited``.
    """
    check_image("original", original)
    check_image("edited", edited)
    check_same_shape("edited", edited, original, "original")
    check_mask("mask", mask, original, "original")
    return soft_composite(original, edited, mask)


def soft_composite(original: Tensor, edited: Tensor, mask: Tensor) -> Tensor:
    """:func:`naive_blend` without the argument checks (for callers that ran them)."""
    m = mask.to(original.dtype)
    # Two products rather than original + m·(edited − original): exact at m = 0 and at m = 1.
    return edited.to(original.dtype) * m + original * (1 - m)


def binary_mask(mask: Tensor) -> Tensor:
    """``mask ≥ 0.5`` as a bool tensor; a uint8 mask is read as value/255 (≥ 128)."""
    if mask.dtype == torch.bool:
        return mask
    return mask >= (128 if mask.dtype == torch.uint8 else MASK_THRESHOLD)


def binary_composite(original: Tensor, edited: Tensor, mask: Tensor) -> Tensor:
    """``edited`` where the mask is ≥ 0.5, ``original`` elsewhere (``original``'s dtype): the
    composite with the Poisson target's own mask. No argument checks."""
    return torch.where(binary_mask(mask), edited.to(original.dtype), original)
