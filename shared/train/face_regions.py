"""Masks of facial parts for ALIGNED faces (FFHQ / CelebA-HQ alignment), at any resolution.

Canonical geometry
------------------
FFHQ alignment (REFERENCE.md §5) maps the quad centred at ``c = eye_avg + 0.1·eye_to_mouth``
with half-side ``s = max(2.0·|eye_to_eye|, 1.8·|eye_to_mouth|)`` onto the whole image, so in
image units (x right, y down, both in [0, 1]) the landmarks land at near-fixed places. For a
typical face (``|eye_to_mouth| ≈ 1.0–1.1·|eye_to_eye|``, so ``s = 2·|eye_to_eye|``):

- eye centres at ``x = 0.5 ± 1/8`` (``|eye_to_eye|/(4s)``), ``y ≈ 0.5 − 0.025·r`` ≈ 0.47
  (``r = |eye_to_mouth|/|eye_to_eye|``);
- mouth centre (midpoint of the corners) at ``y ≈ 0.5 + 0.225·r`` ≈ 0.745, corners ≈ ±0.095;
- nose tip ≈ 0.62, brows ≈ 0.405, chin ≈ 0.90.

:data:`CANONICAL_LANDMARKS` holds these points; they were checked by overlaying the regions
on CelebA-HQ / FFHQ-aligned photos (variation between faces is about ±0.02). Each region of
:data:`REGIONS` is a union of ellipses placed on them (centre, semi-axes in units of the
image width/height, rotation in degrees, clockwise on screen). "left"/"right" are as seen in
the image.

Functions
---------
- :func:`region_mask` — hard ({0, 1}) or soft (smooth falloff, ≥ 0.5 exactly inside the hard
  mask) masks, optionally with random jitter of every ellipse (seeded);
- :func:`blob_mask` — an irregular, blobby soft mask with a smooth falloff, shaped like a
  differential-activation (Diff-CAM) map of an edit of that region (seeded), for synthesising
  training pairs.

All return float32 numpy arrays (H, W) in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

import numpy as np

CANONICAL_LANDMARKS: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "left_eye": (0.375, 0.47),
        "right_eye": (0.625, 0.47),
        "left_brow": (0.37, 0.405),
        "right_brow": (0.63, 0.405),
        "nose_bridge": (0.5, 0.50),
        "nose_tip": (0.5, 0.62),
        "mouth_left": (0.405, 0.745),
        "mouth_right": (0.595, 0.745),
        "mouth": (0.5, 0.745),
        "chin": (0.5, 0.90),
    }
)


@dataclass(frozen=True)
class Ellipse:
    """An ellipse in image units: centre (cx, cy), semi-axes (rx, ry), rotation in degrees."""

    cx: float
    cy: float
    rx: float
    ry: float
    angle: float = 0.0


def _at(landmark: str, rx: float, ry: float, angle: float = 0.0, dy: float = 0.0) -> Ellipse:
    x, y = CANONICAL_LANDMARKS[landmark]
    return Ellipse(x, y + dy, rx, ry, angle)


_LEFT_EYE = _at("left_eye", 0.065, 0.038)
_RIGHT_EYE = _at("right_eye", 0.065, 0.038)
_LEFT_BROW = _at("left_brow", 0.085, 0.028, angle=-8.0)
_RIGHT_BROW = _at("right_brow", 0.085, 0.028, angle=8.0)

REGIONS: Mapping[str, tuple[Ellipse, ...]] = MappingProxyType(
    {
        "left_eye": (_LEFT_EYE,),
        "right_eye": (_RIGHT_EYE,),
        "eyes": (_LEFT_EYE, _RIGHT_EYE),
        "left_brow": (_LEFT_BROW,),
        "right_brow": (_RIGHT_BROW,),
        "brows": (_LEFT_BROW, _RIGHT_BROW),
        "upper_face": (Ellipse(0.5, 0.44, 0.23, 0.09),),
        "nose": (_at("nose_tip", 0.06, 0.10, dy=-0.025),),
        "mouth": (_at("mouth", 0.11, 0.05),),
        "cheeks": (Ellipse(0.32, 0.63, 0.07, 0.09), Ellipse(0.68, 0.63, 0.07, 0.09)),
        "chin": (_at("chin", 0.12, 0.055, dy=-0.03),),
        "lower_face": (_at("mouth", 0.21, 0.14, dy=0.045),),
        "forehead": (Ellipse(0.5, 0.30, 0.21, 0.08),),
        "face": (Ellipse(0.5, 0.60, 0.25, 0.33),),
    }
)
REGION_NAMES: tuple[str, ...] = tuple(REGIONS)
_MIN_BLOB_SIGMA = 0.025


def region_mask(
    size: int | tuple[int, int],
    region: str,
    *,
    soft: bool = False,
    feather: float = 0.03,
    jitter: float = 0.0,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """The mask of ``region`` for an aligned face of ``size`` (int or (H, W)).

    Args:
        soft: hard {0, 1} mask (False) or a smooth falloff (True) that is 1 deep inside,
            0 far outside, and crosses 0.5 on the hard mask's outline.
        feather: half-width of the soft transition, in units of the image side.
        jitter: random variation of every ellipse, relative: centre shift up to
            ``jitter``·semi-axis, semi-axes ×(1 ± jitter), rotation ± 20°·jitter. 0 = canonical.
        rng: a numpy Generator or an int seed; required when ``jitter > 0``.

    Returns:
        float32 array (H, W) in [0, 1].
    """
    height, width = _check_size(size)
    ellipses = _region(region)
    if not 0 <= feather <= 0.5:
        raise ValueError(f"feather: must be in [0, 0.5], got {feather}")
    if not 0 <= jitter <= 0.5:
        raise ValueError(f"jitter: must be in [0, 0.5], got {jitter}")
    if jitter > 0:
        generator = _generator(rng)
        ellipses = tuple(_jittered(e, jitter, generator) for e in ellipses)
    out = np.zeros((height, width), np.float32)
    for ellipse in ellipses:
        distance = _signed_distance(ellipse, height, width)
        if soft and feather > 0:
            values = _smoothstep(feather, -feather, distance)
        else:
            values = (distance <= 0).astype(np.float32)
        np.maximum(out, values, out=out)
    return out


def blob_mask(
    size: int | tuple[int, int],
    region: str,
    rng: np.random.Generator | int,
    *,
    blobs: int = 5,
    spurious: int = 1,
    jitter: float = 0.15,
) -> np.ndarray:
    """An irregular soft mask like a differential-activation map of an edit of ``region``.

    A sum of ``blobs`` anisotropic Gaussian blobs centred inside the (jittered) region, plus
    ``spurious`` weak blobs anywhere in the face, normalised to a maximum of 1 and passed
    through a random smooth threshold: a saturated core, a smooth falloff, an irregular
    outline. Deterministic for a given ``rng`` seed.

    Returns:
        float32 array (H, W) in [0, 1] with maximum 1.
    """
    height, width = _check_size(size)
    ellipses = _region(region)
    generator = _generator(rng)
    if isinstance(blobs, bool) or not isinstance(blobs, int) or blobs < 1:
        raise ValueError(f"blobs: must be an int ≥ 1, got {blobs!r}")
    if isinstance(spurious, bool) or not isinstance(spurious, int) or spurious < 0:
        raise ValueError(f"spurious: must be an int ≥ 0, got {spurious!r}")
    if not 0 <= jitter <= 0.5:
        raise ValueError(f"jitter: must be in [0, 0.5], got {jitter}")
    ellipses = tuple(_jittered(e, jitter, generator) for e in ellipses)

    # Smooth fields are built on a grid of ≤ 128 cells a side and upsampled bilinearly.
    scale = min(1.0, 128 / max(height, width))
    gh, gw = max(2, round(height * scale)), max(2, round(width * scale))
    yy = (np.arange(gh, dtype=np.float64) + 0.5) / gh
    xx = (np.arange(gw, dtype=np.float64) + 0.5) / gw
    field = np.zeros((gh, gw))
    for k in range(blobs):
        ellipse = ellipses[k % len(ellipses)]
        cx, cy = _point_in(ellipse, generator)
        # Activation maps come from coarse feature maps: blobs are never thinner than ~1/40.
        sx = max(ellipse.rx * generator.uniform(0.5, 1.0), _MIN_BLOB_SIGMA)
        sy = max(ellipse.ry * generator.uniform(0.5, 1.0), _MIN_BLOB_SIGMA)
        field += generator.uniform(0.6, 1.0) * _gaussian(
            xx, yy, cx, cy, sx, sy, generator.uniform(0, 180)
        )
    face = REGIONS["face"][0]
    for _ in range(spurious):
        cx, cy = _point_in(face, generator)
        s = generator.uniform(0.02, 0.06)
        field += generator.uniform(0.05, 0.3) * _gaussian(xx, yy, cx, cy, s, s, 0.0)
    field /= field.max()
    low, high = generator.uniform(0.1, 0.25), generator.uniform(0.55, 0.8)
    mask = _smoothstep(low, high, field)
    return np.clip(_resize_bilinear(mask, height, width), 0, 1).astype(np.float32)


def _check_size(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        height = width = int(size)
    elif (
        isinstance(size, Sequence)
        and len(size) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in size)
    ):
        height, width = int(size[0]), int(size[1])
    else:
        raise ValueError(f"size: expected an int or (H, W) ints, got {size!r}")
    if height < 1 or width < 1:
        raise ValueError(f"size: must be ≥ 1, got {size!r}")
    return height, width


def _region(region: str) -> tuple[Ellipse, ...]:
    if region not in REGIONS:
        raise ValueError(f"region: unknown region {region!r}; known: {list(REGION_NAMES)}")
    return REGIONS[region]


def _generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ValueError(f"rng: expected a numpy Generator or an int seed, got {rng!r}")


def _jittered(e: Ellipse, jitter: float, rng: np.random.Generator) -> Ellipse:
    u = rng.uniform(-1, 1, size=5)
    return replace(
        e,
        cx=e.cx + jitter * u[0] * e.rx,
        cy=e.cy + jitter * u[1] * e.ry,
        rx=e.rx * (1 + jitter * u[2]),
        ry=e.ry * (1 + jitter * u[3]),
        angle=e.angle + 20.0 * jitter * u[4],
    )


def _signed_distance(e: Ellipse, height: int, width: int) -> np.ndarray:
    """Approximate signed distance to the outline (< 0 inside), in image-side units.

    First order in (ρ − 1) with ρ the elliptic radius: exact on the outline, smooth elsewhere.
    """
    side = max(height, width)
    y = (np.arange(height, dtype=np.float64)[:, None] + 0.5) / height - e.cy
    x = (np.arange(width, dtype=np.float64)[None, :] + 0.5) / width - e.cx
    y, x = y * (height / side), x * (width / side)
    a, b = e.rx * width / side, e.ry * height / side
    theta = math.radians(e.angle)
    u = (x * math.cos(theta) + y * math.sin(theta)) / a
    v = (-x * math.sin(theta) + y * math.cos(theta)) / b
    rho = np.maximum(np.sqrt(u * u + v * v), 1e-12)
    grad_rho = np.maximum(np.sqrt((u / a) ** 2 + (v / b) ** 2), 1e-12) / rho  # |∇ρ|
    return (rho - 1) / grad_rho


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)


def _point_in(e: Ellipse, rng: np.random.Generator) -> tuple[float, float]:
    """A point uniformly distributed inside the ellipse."""
    r, phi = math.sqrt(rng.uniform()), rng.uniform(0, 2 * math.pi)
    u, v = r * e.rx * math.cos(phi), r * e.ry * math.sin(phi)
    theta = math.radians(e.angle)
    return (
        e.cx + u * math.cos(theta) - v * math.sin(theta),
        e.cy + u * math.sin(theta) + v * math.cos(theta),
    )


def _gaussian(
    xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, sx: float, sy: float, angle: float
) -> np.ndarray:
    theta = math.radians(angle)
    x, y = xx[None, :] - cx, yy[:, None] - cy
    u = (x * math.cos(theta) + y * math.sin(theta)) / sx
    v = (-x * math.sin(theta) + y * math.cos(theta)) / sy
    return np.exp(-0.5 * (u * u + v * v))


def _resize_bilinear(a: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize with pixel-centre alignment (separable, as two small matrix products)."""
    return _interpolation_matrix(height, a.shape[0]) @ a @ _interpolation_matrix(
        width, a.shape[1]
    ).T


def _interpolation_matrix(n_out: int, n_in: int) -> np.ndarray:
    pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = pos - lo
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] += 1 - frac
    m[np.arange(n_out), hi] += frac
    return m
