"""Poisson image blending (Pérez, Gangnet & Blake 2003) for batches of same-size images."""

from __future__ import annotations

import importlib.util
from functools import cache
from typing import Literal

import torch
from torch import Tensor

from shared.blend.naive import binary_mask
from shared.blend.poisson_exact import DEFAULT_MAX_ITER, DEFAULT_TOL, ExactSolveStats, blend_exact
from shared.blend.poisson_opencv import blend_opencv
from shared.blend.validation import check_choice, check_image, check_mask, check_same_shape

PoissonMode = Literal["exact", "opencv"]
Gradients = Literal["source", "mixed"]
Implementation = Literal["auto", "compiled", "tensor"]
POISSON_MODES: tuple[str, ...] = ("exact", "opencv")
GRADIENTS: tuple[str, ...] = ("source", "mixed")
IMPLEMENTATIONS: tuple[str, ...] = ("auto", "compiled", "tensor")


def poisson_blend(
    source: Tensor,
    target: Tensor,
    mask: Tensor,
    mode: PoissonMode = "exact",
    gradients: Gradients = "source",
    *,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    implementation: Implementation = "auto",
) -> Tensor:
    """Blend ``source`` into ``target`` inside ``mask`` by solving a Poisson equation.

    Args:
        source: (B, C, H, W), any C ≥ 1, floating, values in [0, 1]: gives the gradients.
        target: same shape and device: gives the boundary values and everything outside.
        mask: (B, 1, H, W), bool or floating in [0, 1]; binarised as ``mask ≥ 0.5``.
        mode: ``"exact"`` — Pérez's equation with unknowns only in the mask and the target as
            Dirichlet boundary: every pixel outside the mask is returned unchanged (bit-exact);
            see :mod:`shared.blend.poisson_exact`. ``"opencv"`` — what
            ``cv2.seamlessClone(src, dst, mask, centre_of_mask_bbox, NORMAL_CLONE)`` computes
            (a solve over the mask's whole bounding box, which also changes pixels outside
            the mask); see :mod:`shared.blend.poisson_opencv`.
        gradients: ``"source"``, or ``"mixed"`` — per channel, the stronger of the source
            and target gradients (as ``MIXED_CLONE``). Exact mode compares each pair of
            neighbours (Pérez's rule; ties go to the source); opencv mode uses OpenCV's
            per-pixel ``|∂x − ∂y|`` criterion (ties go to the target).
        tol, max_iter: exact mode's stopping rule: relative residual ‖b − Af‖₂/‖b‖₂ ≤ tol
            per channel, at most ``max_iter`` conjugate-gradient iterations (a
            RuntimeWarning if it stops short).

    Returns:
        (B, C, H, W) in ``target``'s dtype, clamped to [0, 1]. Computation is float32 on
        the inputs' device (CPU or CUDA); not differentiable. Items are independent:
        batching never changes an item's result. An empty mask returns the target.

    Raises:
        ValueError: shape or device mismatch, empty batch, non-float images, integer masks,
            NaN/Inf, values outside [0, 1], an unknown mode/gradients/implementation, bad
            tol/max_iter, ``implementation="compiled"`` on CUDA or without numba.
    """
    check_choice("mode", mode, POISSON_MODES)
    _check_arguments(source, target, mask, gradients, tol, max_iter)
    compiled = _compiled(implementation, source)
    blended, _ = _blend(source, target, mask, mode, gradients == "mixed", tol, max_iter, compiled)
    return blended


def poisson_blend_with_stats(
    source: Tensor,
    target: Tensor,
    mask: Tensor,
    gradients: Gradients = "source",
    *,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    implementation: Implementation = "auto",
) -> tuple[Tensor, ExactSolveStats]:
    """Exact mode, also returning the solver's per-item iterations and residuals."""
    _check_arguments(source, target, mask, gradients, tol, max_iter)
    compiled = _compiled(implementation, source)
    blended, stats = _blend(
        source, target, mask, "exact", gradients == "mixed", tol, max_iter, compiled
    )
    assert stats is not None
    return blended, stats


def _check_arguments(
    source: Tensor, target: Tensor, mask: Tensor, gradients: str, tol: float, max_iter: int
) -> None:
    check_image("source", source)
    check_image("target", target)
    check_same_shape("target", target, source, "source")
    check_mask("mask", mask, source, "source")
    check_choice("gradients", gradients, GRADIENTS)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol < 1:
        raise ValueError(f"tol: must be a number in (0, 1), got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter: must be an int ≥ 1, got {max_iter!r}")


@cache
def numba_available() -> bool:
    """Whether the compiled implementation can run (numba is installed)."""
    return importlib.util.find_spec("numba") is not None


def precompile_poisson() -> bool:
    """Compile the CPU kernels now (or load them from numba's on-disk cache) instead of on
    the first blend, which then takes ~25 s on a 2-core machine. False without numba."""
    if not numba_available():
        return False
    image = torch.linspace(0, 1, 3 * 8 * 8).view(1, 3, 8, 8)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1
    # Contiguous CHW and HWC-as-CHW inputs compile separate specialisations.
    for source in (image, image.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)):
        for mode in POISSON_MODES:
            for gradients in GRADIENTS:
                poisson_blend(source, image.flip(-1), mask, mode, gradients,  # type: ignore[arg-type]
                              implementation="compiled")
    return True


def _compiled(implementation: str, like: Tensor) -> bool:
    check_choice("implementation", implementation, IMPLEMENTATIONS)
    if implementation == "tensor":
        return False
    usable = like.device.type == "cpu" and numba_available()
    if implementation == "compiled" and not usable:
        why = "numba is not installed" if like.device.type == "cpu" else f"on {like.device}"
        raise ValueError(f"implementation: 'compiled' runs on CPU tensors with numba ({why})")
    return usable


@torch.no_grad()
def _blend(
    source: Tensor,
    target: Tensor,
    mask: Tensor,
    mode: str,
    mixed: bool,
    tol: float,
    max_iter: int,
    compiled: bool,
) -> tuple[Tensor, ExactSolveStats | None]:
    inside = binary_mask(mask)
    out = target.clone()
    src32, tgt32 = source.to(torch.float32), target.to(torch.float32)
    if mode == "opencv":
        blend_opencv(src32, tgt32, inside, mixed, out, compiled=compiled)
        return out, None
    stats = blend_exact(
        src32, tgt32, inside, mixed, out, tol=tol, max_iter=max_iter, compiled=compiled
    )
    return out, stats
