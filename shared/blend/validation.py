"""Input checks shared by the blending functions.

Conventions (documented once, here): images are float tensors ``(B, C, H, W)`` with values
in [0, 1]; masks are ``(B, 1, H, W)``, float in [0, 1] or bool. Any floating dtype is
accepted (computation happens in float32, results come back in the target's dtype).
Integer tensors are rejected rather than guessed at: an 8-bit image or a 0/255 mask would
otherwise be off by a factor of 255.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_image(name: str, x: object) -> Tensor:
    """Raise ValueError unless ``x`` is a finite float tensor (B, C, H, W) in [0, 1]."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name}: expected shape (B, C, H, W), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: empty batch (B = 0)")
    if min(x.shape[1:]) == 0:
        raise ValueError(f"{name}: channel and spatial sizes must be ≥ 1, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(
            f"{name}: dtype {x.dtype} is not a floating type; convert to float in [0, 1] "
            "(e.g. uint8 / 255)"
        )
    _check_finite_in_unit_range(name, x)
    return x


def check_mask(name: str, mask: object, like: Tensor, like_name: str) -> Tensor:
    """Raise ValueError unless ``mask`` is (B, 1, H, W) like ``like``, bool or float in [0, 1]."""
    if not isinstance(mask, Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(mask).__name__}")
    b, _, h, w = like.shape
    if mask.ndim != 4 or mask.shape[0] != b or mask.shape[1] != 1 or mask.shape[2:] != (h, w):
        raise ValueError(
            f"{name}: expected shape {(b, 1, h, w)} to match {like_name} {tuple(like.shape)}, "
            f"got {tuple(mask.shape)}"
        )
    if mask.device != like.device:
        raise ValueError(f"{name}: on {mask.device}, but {like_name} is on {like.device}")
    if mask.dtype == torch.bool:
        return mask
    if not mask.is_floating_point():
        raise ValueError(
            f"{name}: dtype {mask.dtype} is not bool or floating; pass a float mask in [0, 1] "
            "(e.g. uint8 / 255) or a bool mask"
        )
    _check_finite_in_unit_range(name, mask)
    return mask


def check_same_shape(name: str, x: Tensor, ref: Tensor, ref_name: str) -> None:
    if x.shape != ref.shape:
        raise ValueError(
            f"{name}: shape {tuple(x.shape)} does not match {ref_name} {tuple(ref.shape)}"
        )
    if x.device != ref.device:
        raise ValueError(f"{name}: on {x.device}, but {ref_name} is on {ref.device}")


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: {value!r} is not one of {list(choices)}")
    return value


def _check_finite_in_unit_range(name: str, x: Tensor) -> None:
    if x.numel() == 0:
        return
    # One pass: min/max propagate NaN, and ±Inf falls outside [0, 1]. A permuted tensor (e.g.
    # an HWC array seen as CHW) is reduced in memory order, without a copy.
    lo, hi = torch.aminmax(_memory_order(x).reshape(-1))
    if bool(torch.isnan(lo) | torch.isnan(hi)):
        raise ValueError(f"{name}: contains NaN values")
    if bool(torch.isinf(lo) | torch.isinf(hi)):
        raise ValueError(f"{name}: contains Inf values")
    if lo < 0 or hi > 1:
        raise ValueError(
            f"{name}: values must lie in [0, 1], found min {float(lo):.6g} and max {float(hi):.6g}"
        )


def _memory_order(x: Tensor) -> Tensor:
    """``x`` with its dims permuted into memory order (outermost first): a dense tensor then
    reshapes to 1-D as a view."""
    if x.is_contiguous():
        return x
    order = sorted(range(x.ndim), key=lambda d: (-x.stride(d), -x.shape[d]))
    return x.permute(*order)
