"""The bounding box of a binary mask (both Poisson modes solve on it)."""

from __future__ import annotations

import torch
from torch import Tensor


def mask_box(mask: Tensor) -> tuple[int, int, int, int] | None:
    """The bounding box ``(y0, y1, x0, x1)`` (ends exclusive) of a bool (H, W) mask, or None."""
    as_bytes = mask.view(torch.uint8)  # amax over bytes is ~30× faster than any() over bool
    rows = torch.nonzero(as_bytes.amax(dim=1)).flatten()
    if rows.numel() == 0:
        return None
    cols = torch.nonzero(as_bytes.amax(dim=0)).flatten()
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
