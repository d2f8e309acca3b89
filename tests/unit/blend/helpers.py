"""Reference implementations and image helpers for the blending tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spl
import torch
from PIL import Image

from shared.blend.poisson_exact import MIXED_TIE_MARGIN


def load_face(path: Path, size: int) -> torch.Tensor:
    """(1, 3, size, size) float32 with values k/255 (exactly representable 8-bit levels)."""
    with Image.open(path) as im:
        rgb = im.convert("RGB")
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.BICUBIC)
        array = np.asarray(rgb, dtype=np.uint8).copy()
    return torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255


def to_uint8_hwc(x: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) in [0, 1] holding k/255 values → uint8 (H, W, C)."""
    return np.rint(x[0].permute(1, 2, 0).double().numpy() * 255).astype(np.uint8)


def quantise_like_cv2(x: torch.Tensor) -> np.ndarray:
    """OpenCV truncates to uint8; the small offset keeps exact k/255 values at k."""
    return np.floor(x[0].permute(1, 2, 0).double().numpy() * 255 + 1e-3).clip(0, 255).astype(
        np.int16
    )


def cv2_seamless_clone(src: torch.Tensor, dst: torch.Tensor, mask: np.ndarray, mixed: bool):
    """cv2.seamlessClone for same-size images pasted in place (centre of the mask's bbox)."""
    m8 = mask.astype(np.uint8) * 255
    inner = m8[1:-1, 1:-1]
    ys, xs = np.nonzero(inner)
    if len(ys) == 0:
        return to_uint8_hwc(dst).astype(np.int16)
    # OpenCV zeroes the mask's border before taking the bounding box.
    y0, y1, x0, x1 = ys.min() + 1, ys.max() + 2, xs.min() + 1, xs.max() + 2
    centre = (x0 + (x1 - x0) // 2, y0 + (y1 - y0) // 2)
    flag = cv2.MIXED_CLONE if mixed else cv2.NORMAL_CLONE
    out = cv2.seamlessClone(to_uint8_hwc(src), to_uint8_hwc(dst), m8.copy(), centre, flag)
    return out.astype(np.int16)


def perez_reference(
    src: torch.Tensor, tgt: torch.Tensor, inside: np.ndarray, mixed: bool = False
) -> np.ndarray:
    """Direct sparse solve (scipy splu, float64) of Pérez's equation; (C, H, W), clamped.

    Unknowns are the pixels of ``inside``; N_p are the 4-neighbours within the image. A full
    mask has no Dirichlet pixel; its free constant matches the source's mean.
    """
    s = src[0].double().numpy()
    t = tgt[0].double().numpy()
    channels, height, width = s.shape
    ys, xs = np.nonzero(inside)
    n = len(ys)
    index = -np.ones((height, width), np.int64)
    index[ys, xs] = np.arange(n)
    rows, cols, vals = [np.arange(n)], [np.arange(n)], []
    degree = np.zeros(n)
    b = np.zeros((channels, n))
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        yq, xq = ys + dy, xs + dx
        ok = (yq >= 0) & (yq < height) & (xq >= 0) & (xq < width)
        degree += ok
        p, yq, xq = np.arange(n)[ok], yq[ok], xq[ok]
        v = s[:, ys[ok], xs[ok]] - s[:, yq, xq]
        if mixed:
            vt = t[:, ys[ok], xs[ok]] - t[:, yq, xq]
            v = np.where(np.abs(vt) > np.abs(v) + MIXED_TIE_MARGIN, vt, v)
        np.add.at(b.T, p, v.T)
        q = index[yq, xq]
        unknown = q >= 0
        rows.append(p[unknown])
        cols.append(q[unknown])
        vals.append(-np.ones(unknown.sum()))
        np.add.at(b.T, p[~unknown], t[:, yq[~unknown], xq[~unknown]].T)
    vals.insert(0, degree)
    a = sp.csc_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )
    out = t.copy()
    if inside.all():
        # No Dirichlet pixel: the system is singular but consistent. Pin the first unknown,
        # solve, then fix the constant so that the mean equals the source's.
        lu = spl.splu(a[1:, 1:].tocsc())
        for c in range(channels):
            f = np.concatenate([[0.0], lu.solve(b[c, 1:])])
            out[c, ys, xs] = f - f.mean() + s[c].mean()
        return np.clip(out, 0, 1)
    lu = spl.splu(a)
    for c in range(channels):
        out[c, ys, xs] = lu.solve(b[c])
    return np.clip(out, 0, 1)
