"""The naive composite: the edited image pasted over the original through a soft mask."""

from __future__ import annotations

from torch import Tensor

from shared.blend.validation import check_image, check_mask, check_same_shape


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
    m = mask.to(original.dtype)
    edited = edited.to(original.dtype)
    # Two products rather than original + m·(edited − original): exact at m = 0 and at m = 1.
    return edited * m + original * (1 - m)
