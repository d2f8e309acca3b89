"""Training-free differential activation: an edit mask from generator feature differences.

Given the generator's intermediate feature maps for the inversion, F_r = G_r(w), and for
the edit, F'_r = G_r(w'), keyed by resolution r, the mask is computed as follows:

1. Per resolution r, a relative difference map
       D_r(p) = mean_c |F'_r(c, p) − F_r(c, p)| / (mean_{c, q} |F_r(c, q)| + eps),
   i.e. the channel-mean absolute change divided by the image's mean feature magnitude at
   that resolution, so that resolutions with different activation scales are comparable.
2. Each D_r is upsampled bilinearly (``align_corners=False``) to ``out_size``.
3. The maps are combined by their **arithmetic** mean. A geometric mean would be sharper,
   but an edit restricted to some W+ layers leaves the features of the other resolutions
   exactly unchanged, and a geometric mean would then erase the whole mask.
4. Per-image min–max normalisation:
       m = (A − min A) / (max(max A − min A, RANGE_FLOOR · max A, ABSOLUTE_FLOOR) + eps).
   An unchanged image (A ≡ 0) gives an all-zero mask. ``RANGE_FLOOR`` (1e-3) keeps a
   spatially uniform difference (whose range is float rounding) from being stretched into
   noise: variations below 0.1 % of the peak stay below 0.1 % after normalisation.
   ``ABSOLUTE_FLOOR`` (1e-4, a relative feature change far below any edit's) does the same
   for an edit that changes nothing (strength 0, a sweep's middle step): G(w) and G(w')
   rendered in different batches differ by float rounding only, which must not become a mask.
5. Contrast step: m ← smoothstep((m − low) / (high − low)) with smoothstep(t) = t²(3 − 2t)
   on t clamped to [0, 1]. Values below ``low`` (the diffuse, low-level change that a
   global edit causes everywhere) become 0, values above ``high`` become 1, and the ramp
   between them is C¹-smooth, so the mask stays soft at its border.

Default resolutions: every resolution present in both dicts between 16 and 256 inclusive
(4² and 8² maps are too coarse to localise, 512²/1024² maps mostly carry texture noise);
if none is in that range, every common resolution.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

DEFAULT_RESOLUTION_RANGE = (16, 256)
RANGE_FLOOR = 1e-3
ABSOLUTE_FLOOR = 1e-4


def _size_pair(out_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(out_size, int):
        size = (out_size, out_size)
    else:
        size = tuple(int(s) for s in out_size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"out_size must be a positive int or (H, W), got {out_size!r}")
    return size[0], size[1]


def _select_resolutions(
    feats_orig: Mapping[int, Tensor],
    feats_edit: Mapping[int, Tensor],
    resolutions: Iterable[int] | None,
) -> list[int]:
    common = sorted(set(feats_orig) & set(feats_edit))
    if resolutions is None:
        low, high = DEFAULT_RESOLUTION_RANGE
        chosen = [r for r in common if low <= r <= high] or common
    else:
        chosen = sorted(set(resolutions))
        missing = [r for r in chosen if r not in feats_orig or r not in feats_edit]
        if missing:
            raise ValueError(
                f"resolutions {missing} are not in both feature dicts (available: {common})"
            )
    if not chosen:
        raise ValueError("feats_orig and feats_edit share no resolution")
    return chosen


def smoothstep(x: Tensor, low: float, high: float) -> Tensor:
    """0 below ``low``, 1 above ``high``, 3t² − 2t³ in between."""
    t = ((x - low) / (high - low)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def feature_difference_mask(
    feats_orig: Mapping[int, Tensor],
    feats_edit: Mapping[int, Tensor],
    out_size: int | tuple[int, int],
    resolutions: Iterable[int] | None = None,
    eps: float = 1e-6,
    *,
    low: float = 0.1,
    high: float = 0.6,
) -> Tensor:
    """Soft edit mask (B, 1, H, W) in [0, 1] from generator features of G(w) and G(w').

    See the module docstring for the computation. ``resolutions`` picks the feature maps
    to use (default: those between 16 and 256); ``low``/``high`` are the contrast ramp.
    """
    size = _size_pair(out_size)
    if not 0 <= low < high <= 1:
        raise ValueError(f"need 0 <= low < high <= 1, got low={low}, high={high}")
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    chosen = _select_resolutions(feats_orig, feats_edit, resolutions)

    total: Tensor | None = None
    for r in chosen:
        f, f_edit = feats_orig[r], feats_edit[r]
        if f.ndim != 4 or f.shape != f_edit.shape:
            raise ValueError(
                f"features at resolution {r} must be two (B, C, h, w) tensors of equal shape, "
                f"got {tuple(f.shape)} and {tuple(f_edit.shape)}"
            )
        if total is not None and f.shape[0] != total.shape[0]:
            raise ValueError(
                f"features at resolution {r} have batch {f.shape[0]}, expected {total.shape[0]}"
            )
        scale = f.abs().mean(dim=(1, 2, 3), keepdim=True) + eps
        diff = (f_edit - f).abs().mean(dim=1, keepdim=True) / scale
        diff = F.interpolate(diff, size=size, mode="bilinear", align_corners=False)
        total = diff if total is None else total + diff
    assert total is not None
    mean = total / len(chosen)

    flat = mean.flatten(1)
    lo = flat.amin(dim=1)[:, None, None, None]
    hi = flat.amax(dim=1)[:, None, None, None]
    spread = torch.maximum(torch.maximum(hi - lo, RANGE_FLOOR * hi),
                           torch.full_like(hi, ABSOLUTE_FLOOR))
    normalised = (mean - lo) / (spread + eps)
    return smoothstep(normalised, low, high)


__all__ = [
    "ABSOLUTE_FLOOR", "DEFAULT_RESOLUTION_RANGE", "RANGE_FLOOR", "feature_difference_mask",
    "smoothstep",
]
