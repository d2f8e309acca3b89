"""Artifact suppressors: (original, edited, mask) → the clean composite.

Every suppressor takes the original photo and the generated (edited) image, (B, 3, H, W) in
[0, 1], and the soft edit mask (B, 1, H, W) in [0, 1], and returns (B, 3, H, W) in [0, 1];
the naive composite is computed inside where a method needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from torch import Tensor, nn
from torch.nn import functional as F

from shared.blend.naive import binary_composite, binary_mask, naive_blend, soft_composite
from shared.blend.poisson import (
    GRADIENTS,
    POISSON_MODES,
    Gradients,
    PoissonMode,
    poisson_blend,
)
from shared.blend.validation import check_choice, check_image, check_mask, check_same_shape
from shared.core.contracts import SUPPRESSORS

if TYPE_CHECKING:
    from shared.models.maresunet import MAResUNet
    from shared.models.sdea_deghosting import Deghosting

SUPPRESSOR_NAMES: tuple[str, ...] = SUPPRESSORS  # the contract's names, built below


@runtime_checkable
class Suppressor(Protocol):
    name: str

    def __call__(self, original: Tensor, edited: Tensor, mask: Tensor) -> Tensor: ...


class NaiveSuppressor:
    """No suppression: the naive composite ``edited·m + original·(1 − m)``."""

    name = "naive"

    def __call__(self, original: Tensor, edited: Tensor, mask: Tensor) -> Tensor:
        return naive_blend(original, edited, mask)


class PoissonSuppressor:
    """Poisson blending with the edited image as source and the original photo as target.

    The soft mask is binarised at 0.5 (see :func:`shared.blend.poisson_blend`).
    """

    def __init__(self, mode: PoissonMode = "exact", gradients: Gradients = "source") -> None:
        self.mode = check_choice("mode", mode, POISSON_MODES)
        self.gradients = check_choice("gradients", gradients, GRADIENTS)
        suffix = "" if mode == "exact" else f"-{mode}"
        suffix += "" if gradients == "source" else f"-{gradients}"
        self.name = f"poisson{suffix}"

    def __call__(self, original: Tensor, edited: Tensor, mask: Tensor) -> Tensor:
        return poisson_blend(edited, original, mask, mode=self.mode, gradients=self.gradients)


class MAResUNetSuppressor:
    """The paper's suppressor: MAResU-Net refines the naive composite (a residual in [-1, 1]).

    The composite is the one the network was trained on (its ``composite`` attribute): soft,
    or with the mask binarised at 0.5 as Poisson blending does; a mask-conditioned network
    also gets that mask; the residual is gated to the mask (``m > 0`` soft, ``m ≥ 0.5``
    binary), so pixels outside it stay the original's. Runs the network as it is (device,
    dtype, train/eval mode and autograd are the caller's).
    """

    name = "maresunet"

    def __init__(self, network: MAResUNet | nn.Module) -> None:
        if not isinstance(network, nn.Module):
            raise ValueError(
                f"network: expected a MAResUNet (torch.nn.Module), got {type(network).__name__}"
            )
        self.network = network

    def __call__(self, original: Tensor, edited: Tensor, mask: Tensor) -> Tensor:
        from shared.models.maresunet import residual_refine

        check_image("original", original)
        check_image("edited", edited)
        check_same_shape("edited", edited, original, "original")
        check_mask("mask", mask, original, "original")
        composite, net_mask, gate = suppressor_inputs(self.network, original, edited, mask)
        return residual_refine(self.network, composite, net_mask, gate)  # type: ignore[arg-type]


def suppressor_inputs(
    net: nn.Module, original: Tensor, edited: Tensor, mask: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """(composite, mask for the network, gate) for :func:`~shared.models.maresunet.
    residual_refine`, following the network's ``composite`` (soft unless it says binary).
    Images (B, 3, H, W), mask (B, 1, H, W) in [0, 1]; no argument checks."""
    if getattr(net, "composite", "soft") == "binary":
        inside = binary_mask(mask).to(original.dtype)
        return binary_composite(original, edited, mask), inside, inside
    gate = (mask > 0).to(original.dtype)
    return soft_composite(original, edited, mask), mask.to(original.dtype), gate


def _resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Area when shrinking, bicubic when enlarging (either axis), unchanged when equal."""
    if tuple(x.shape[-2:]) == size:
        return x
    if x.shape[-2] >= size[0] and x.shape[-1] >= size[1]:
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False)


class SdeaSuppressor:
    """SDEA's deghosting: the naive composite, area-downsampled to the network's ``in_size``,
    is regenerated at ``out_size`` by the GLEAN-style network (images in [-1, 1]); the result
    is resized to the caller's size if it differs and clamped to [0, 1].

    Every output pixel is re-synthesised from the small composite, unedited regions included.
    Runs the network as it is (device, train/eval mode and autograd are the caller's); the
    input is cast to the network's dtype and the result back to the input's.
    """

    name = "sdea"

    def __init__(self, network: Deghosting | nn.Module) -> None:
        if not isinstance(network, nn.Module) or not isinstance(
            getattr(network, "in_size", None), int
        ):
            raise ValueError(
                "network: expected an SDEA Deghosting network (torch.nn.Module with an int "
                f"in_size), got {type(network).__name__}"
            )
        self.network = network

    def __call__(self, original: Tensor, edited: Tensor, mask: Tensor) -> Tensor:
        composite = naive_blend(original, edited, mask)
        side = int(self.network.in_size)
        dtype = next(self.network.parameters()).dtype
        x = _resize(composite, (side, side)).to(dtype) * 2 - 1
        out = (self.network(x).to(original.dtype) + 1) / 2
        return _resize(out, tuple(original.shape[-2:])).clamp(0, 1)


def build_suppressor(name: str, network: nn.Module | None = None) -> Suppressor:
    """The suppressor called ``name`` (one of :data:`SUPPRESSOR_NAMES`).

    ``"poisson"`` is exact mode, ``"poisson-opencv"`` the OpenCV formulation;
    ``"maresunet"`` needs ``network`` (a MAResUNet), ``"sdea"`` a Deghosting network; the
    others ignore it.
    """
    if name == "naive":
        return NaiveSuppressor()
    if name == "poisson":
        return PoissonSuppressor(mode="exact")
    if name == "poisson-opencv":
        return PoissonSuppressor(mode="opencv")
    if name == "maresunet":
        if network is None:
            raise ValueError("network: suppressor 'maresunet' needs a MAResUNet network, got None")
        return MAResUNetSuppressor(network)
    if name == "sdea":
        if network is None:
            raise ValueError("network: suppressor 'sdea' needs a Deghosting network, got None")
        return SdeaSuppressor(network)
    raise ValueError(f"name: unknown suppressor {name!r}; known: {list(SUPPRESSOR_NAMES)}")
