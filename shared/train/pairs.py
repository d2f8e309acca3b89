"""Training pairs for the artifact suppressor: naive composite → Poisson composite.

Every pair holds five PNG files of one aligned face at ``size``²: the ``original``, an
``edited`` image, a soft ``mask`` (8-bit grey), the ``naive`` composite
``edited·m + original·(1 − m)`` and the ``poisson`` composite (the training target: exact-mode
Poisson blending with the edited image as source and the original as target, mask ≥ 0.5).
``manifest.jsonl`` and ``manifest.csv`` list every pair: file names, source image, recipe and
its parameters, seed.

Two sources of edits:

``gan`` (the paper's way; official weights, or the ``toy`` preset for tests)
    The pipeline's own stages: :func:`~shared.editing.pipeline.invert` the face, apply a random
    attribute at a random strength within its range (:func:`~shared.editing.pipeline.edit_latents`),
    :func:`~shared.editing.pipeline.generate`, the differential-activation mask
    (:func:`~shared.editing.pipeline.activation_mask`, ``feature_diff``) refined to the output size
    with the default threshold (:func:`~shared.editing.pipeline.refine_mask`).

``synthetic`` (no GAN weights: realistic local edits of real aligned photos)
    A GAN re-renders the *whole* face — colours, illumination and texture drift everywhere —
    while the edit itself is local; naive compositing therefore shows a colour step, halos and
    texture mismatch along the mask outline. The recipe reproduces this:

    1. *Appearance drift* (always, over the whole edited image, as a re-rendering would):
       per-channel gain ×U(0.88, 1.12) and offset U(−0.08, 0.08), gamma U(0.85, 1.2), a smooth
       illumination ramp (±U(0, 0.08) across the face in a random direction), texture
       softening (Gaussian σ U(0.5, 1.5)) or sharpening (unsharp mask, amount U(0.3, 1.0)),
       and Gaussian noise σ U(0, 0.01).
    2. One local change of a facial part, picked uniformly:
       ``appearance`` — only the drift above (the GAN re-rendered an unchanged region);
       ``warp`` — a smooth local warp of the mouth, an eye or the eyes (displacement up to
       ~4 % of the side plus a radial scaling ×U(0.85, 1.2), Gaussian falloff around the part);
       ``swap`` — the part taken from another aligned face of the folder (its colours and
       illumination differ from this face's: the strongest mismatch).
    3. The mask: :func:`shared.train.face_regions.blob_mask` around that part (an irregular,
       blobby soft map like a Diff-CAM), with values below a random cut U(0.05, 0.3) set to 0 as
       the pipeline's ``mask_threshold`` does — the step at that cut is the hard seam that
       naive compositing leaves.

    Every random choice comes from ``numpy.random.default_rng([seed, image index, k])``, so a
    pair is reproducible from the manifest alone and independent of ``--limit``.

Masks are soft in [0, 1]; the Poisson target equals the original wherever mask < 0.5.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

SOURCES = ("synthetic", "gan")
RECIPES = ("appearance", "warp", "swap")
FILES = ("original", "edited", "mask", "naive", "poisson")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
SYNTHETIC_REGIONS = ("mouth", "eyes", "left_eye", "right_eye", "nose", "brows", "cheeks",
                     "chin", "lower_face", "upper_face")
WARP_REGIONS = ("mouth", "eyes", "left_eye", "right_eye")


@dataclass
class Pair:
    """One training pair: float32 arrays, images (H, W, 3) and mask (H, W), all in [0, 1]."""

    original: np.ndarray
    edited: np.ndarray
    mask: np.ndarray
    recipe: str
    params: dict[str, Any] = field(default_factory=dict)


def list_images(folder: Path) -> list[Path]:
    """The images of ``folder`` (not recursive), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"src_dir: {folder} is not a folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def load_face(path: Path, size: int, align: bool = False) -> np.ndarray:
    """An image as float32 (size, size, 3) in [0, 1].

    ``align``: FFHQ-align the largest face with dlib (:mod:`shared.editing.faces`); otherwise an
    image that is not square is centre-cropped to a square. Then an area resize to ``size``.
    """
    from shared.editing.imaging import decode_image

    pixels = decode_image(Path(path).read_bytes(), min_side=16, name=str(path)).pixels
    if align:
        from shared.editing.faces import align_face

        pixels = align_face(pixels, output_size=size, transform_size=max(size, 512)).pixels
    else:
        height, width = pixels.shape[:2]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        pixels = pixels[top : top + side, left : left + side]
    if pixels.shape[0] != size:
        interpolation = cv2.INTER_AREA if pixels.shape[0] > size else cv2.INTER_CUBIC
        pixels = cv2.resize(pixels, (size, size), interpolation=interpolation)
    return pixels.astype(np.float32) / 255.0


# --------------------------------------------------------------- synthetic recipe


def appearance_drift(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Global colour / illumination / texture / noise drift, as a GAN re-rendering shows."""
    size = image.shape[0]
    gain = rng.uniform(0.88, 1.12, 3)
    offset = rng.uniform(-0.08, 0.08, 3)
    gamma = float(rng.uniform(0.85, 1.2))
    ramp = float(rng.uniform(0.0, 0.08))
    angle = float(rng.uniform(0, 2 * math.pi))
    texture = "soften" if rng.uniform() < 0.5 else "sharpen"
    strength = float(rng.uniform(0.5, 1.5) if texture == "soften" else rng.uniform(0.3, 1.0))
    noise = float(rng.uniform(0.0, 0.01))

    out = np.clip(image, 0, 1) ** gamma * gain + offset
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    plane = math.cos(angle) * coords[None, :] + math.sin(angle) * coords[:, None]
    out = out + (ramp * plane)[:, :, None]
    sigma = size / 256 * (strength if texture == "soften" else 1.0)
    blurred = cv2.GaussianBlur(out.astype(np.float32), (0, 0), sigmaX=sigma)
    out = blurred if texture == "soften" else out + strength * (out - blurred)
    out = out + rng.normal(0.0, noise, out.shape)
    params = {"gain": gain.round(4).tolist(), "offset": offset.round(4).tolist(),
              "gamma": round(gamma, 4), "ramp": round(ramp, 4), "ramp_angle": round(angle, 4),
              "texture": texture, "texture_strength": round(strength, 4),
              "noise": round(noise, 4)}
    return np.clip(out, 0, 1).astype(np.float32), params


def _region_centre(region: str) -> tuple[float, float, float]:
    """Centre (x, y) and a radius of a region, in image units."""
    from shared.train.face_regions import REGIONS

    ellipses = REGIONS[region]
    xs = [e.cx for e in ellipses]
    ys = [e.cy for e in ellipses]
    radius = max(max(e.rx, e.ry) for e in ellipses) + (max(xs) - min(xs)) / 2
    return float(np.mean(xs)), float(np.mean(ys)), radius


def local_warp(image: np.ndarray, region: str, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A smooth local warp around ``region``: a shift plus a radial scaling, Gaussian falloff."""
    size = image.shape[0]
    cx, cy, radius = _region_centre(region)
    shift = rng.uniform(-0.04, 0.04, 2)
    scale = float(rng.uniform(0.85, 1.2))
    sigma = radius * 1.2
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    dx, dy = coords[None, :] - cx, coords[:, None] - cy
    weight = np.exp(-(dx**2 + dy**2) / (2 * sigma**2))
    # Backward map: sample the source at a point pulled towards / pushed from the centre.
    src_x = coords[None, :] - weight * (shift[0] + dx * (1 - 1 / scale))
    src_y = coords[:, None] - weight * (shift[1] + dy * (1 - 1 / scale))
    map_x = (src_x * size - 0.5).astype(np.float32)
    map_y = (src_y * size - 0.5).astype(np.float32)
    out = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return out, {"shift": shift.round(4).tolist(), "scale": round(scale, 4)}


def synthetic_pair(
    original: np.ndarray,
    rng: np.random.Generator,
    donor: np.ndarray | None = None,
    recipe: str | None = None,
) -> Pair:
    """One synthetic edit of an aligned face (see the module docstring for the recipe)."""
    from shared.train.face_regions import blob_mask

    size = original.shape[0]
    recipes = RECIPES if donor is not None else RECIPES[:2]
    recipe = recipe or str(rng.choice(recipes))
    if recipe not in RECIPES or (recipe == "swap" and donor is None):
        raise ValueError(f"recipe: {recipe!r} is not one of {list(recipes)}")
    regions = WARP_REGIONS if recipe == "warp" else SYNTHETIC_REGIONS
    region = str(rng.choice(regions))
    base = donor if recipe == "swap" else original
    edited, params = appearance_drift(base, rng)
    if recipe == "warp":
        edited, warp = local_warp(edited, region, rng)
        params["warp"] = warp
    mask = blob_mask(size, region, rng)
    cut = float(rng.uniform(0.05, 0.3))
    mask = np.where(mask >= cut, mask, 0.0).astype(np.float32)
    params.update(region=region, mask_cut=round(cut, 4))
    return Pair(original, edited, mask, recipe, params)


# --------------------------------------------------------------- composites


def composites(original: torch.Tensor, edited: torch.Tensor, mask: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(naive, poisson) for batches: images (B, 3, H, W), mask (B, 1, H, W), all in [0, 1]."""
    from shared.blend import naive_blend, poisson_blend

    naive = naive_blend(original, edited, mask)
    poisson = poisson_blend(edited, original, mask, mode="exact")
    return naive, poisson


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].float()


def _write_png(path: Path, image: torch.Tensor | np.ndarray) -> None:
    if isinstance(image, torch.Tensor):
        image = image[0].permute(1, 2, 0).numpy()
    pixels = np.clip(np.rint(np.asarray(image, np.float32) * 255), 0, 255).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), pixels, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise OSError(f"could not write {path}")


def read_png(path: Path) -> np.ndarray:
    """A pair file as float32 in [0, 1]: (H, W, 3) RGB or (H, W) for masks."""
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise ValueError(f"path: cannot read image {path}")
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    return pixels.astype(np.float32) / 255.0


# --------------------------------------------------------------- writing pairs


def _gan_pairs(
    faces: Sequence[np.ndarray], seeds: Sequence[Sequence[int]], size: int, bundle: Any
) -> list[Pair]:
    """Pairs from the pipeline's stages (invert → edit → generate → activation mask)."""
    from shared.core.edits import EditSpec
    from shared.editing.pipeline import (
        PipelineConfig,
        activation_mask,
        edit_latents,
        generate,
        invert,
        refine_mask,
        resize,
    )

    threshold = PipelineConfig().mask_threshold
    attributes = bundle.attributes()
    specs = []
    for seed in seeds:
        rng = np.random.default_rng(list(seed))
        attribute = str(rng.choice(attributes))
        low, high = bundle.directions.info(attribute).strength_range
        magnitude = float(rng.uniform(0.3, 1.0)) * max(abs(low), abs(high))
        strength = round(magnitude if rng.uniform() < 0.5 else -magnitude, 3)
        specs.append(EditSpec(attribute, strength))
    original = torch.cat([_to_tensor(face) for face in faces]).to(bundle.device)
    with torch.inference_mode():
        w = invert(bundle.encoder, original, bundle.encoder_size)
        w_edit = edit_latents(w, [[spec] for spec in specs], bundle.direction)
        _, edited_native, feats_orig, feats_edit = generate(bundle.generator, w, w_edit)
        mask = activation_mask("feature_diff", size=bundle.encoder_size,
                               feats_orig=feats_orig, feats_edit=feats_edit)
        mask = refine_mask(mask, size, threshold)
        edited = resize(edited_native, size)
    pairs = []
    for i, spec in enumerate(specs):
        pairs.append(Pair(
            faces[i], edited[i].permute(1, 2, 0).float().cpu().numpy(),
            mask[i, 0].float().cpu().numpy(), "gan",
            {"attribute": spec.attribute, "strength": spec.strength,
             "activation": "feature_diff", "mask_threshold": threshold,
             "models": bundle.preset},
        ))
    return pairs


def write_pairs(
    src_dir: Path,
    out_dir: Path,
    *,
    source: str = "synthetic",
    size: int = 256,
    per_image: int = 1,
    seed: int = 0,
    limit: int | None = None,
    align: bool = False,
    bundle: Any = None,
    on_pair: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Write pairs for the images of ``src_dir`` into ``out_dir``; returns the manifest rows.

    ``source="gan"`` needs ``bundle`` (a :class:`shared.editing.bundle.ModelBundle`).
    Faces that cannot be read or aligned are skipped and listed with ``"skipped"`` rows.
    """
    if source not in SOURCES:
        raise ValueError(f"source: {source!r} is not one of {list(SOURCES)}")
    if source == "gan" and bundle is None:
        raise ValueError("bundle: source 'gan' needs a model bundle")
    if not 16 <= size <= 4096:
        raise ValueError(f"size: {size} is outside [16, 4096]")
    if per_image < 1:
        raise ValueError(f"per_image: must be ≥ 1, got {per_image}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit: must be ≥ 1, got {limit}")
    images = list_images(src_dir)[:limit]
    if not images:
        raise ValueError(f"src_dir: no images in {src_dir}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    rows: list[dict[str, Any]] = []
    faces: dict[int, np.ndarray] = {}
    skipped: list[dict[str, Any]] = []
    for index, path in enumerate(images):
        try:
            faces[index] = load_face(path, size, align=align)
        except Exception as exc:  # noqa: BLE001 - a bad face must not stop the others
            skipped.append({"source": path.name, "skipped": f"{type(exc).__name__}: {exc}"})
    usable = sorted(faces)
    for index in usable:
        seeds = [(seed, index, k) for k in range(per_image)]
        if source == "gan":
            pairs = _gan_pairs([faces[index]] * per_image, seeds, size, bundle)
        else:
            pairs = []
            for pair_seed in seeds:
                rng = np.random.default_rng(list(pair_seed))
                donors = [i for i in usable if i != index]
                donor = faces[donors[int(rng.integers(len(donors)))]] if donors else None
                pairs.append(synthetic_pair(faces[index], rng, donor))
        for k, pair in enumerate(pairs):
            row = _write_pair(out_dir, images[index], k, pair, seeds[k])
            rows.append(row)
            if on_pair:
                on_pair(row)
    _write_manifest(out_dir, rows, skipped)
    return rows


def _write_pair(out_dir: Path, image: Path, k: int, pair: Pair, pair_seed: Sequence[int]
                ) -> dict[str, Any]:
    original, edited = _to_tensor(pair.original), _to_tensor(pair.edited)
    mask = _to_tensor(pair.mask)
    naive, poisson = composites(original, edited, mask)
    name = f"{image.stem}_{k:02d}"
    files = {kind: f"{name}_{kind}.png" for kind in FILES}
    for kind, tensor in zip(FILES, (original, edited, mask, naive, poisson), strict=True):
        _write_png(out_dir / files[kind], tensor)
    return {"pair": name, "source": image.name, "recipe": pair.recipe,
            "params": pair.params, "seed": list(pair_seed), "size": int(original.shape[-1]),
            **files}


def _write_manifest(out_dir: Path, rows: list[dict[str, Any]], skipped: list[dict[str, Any]]
                    ) -> None:
    with open(out_dir / "manifest.jsonl", "w") as handle:
        for row in rows + skipped:
            handle.write(json.dumps(row) + "\n")
    columns = ["pair", "source", "recipe", "size", "seed", *FILES, "params"]
    with open(out_dir / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({**{c: row[c] for c in columns if c not in ("seed", "params")},
                             "seed": " ".join(map(str, row["seed"])),
                             "params": json.dumps(row["params"])})


def read_manifest(pairs_dir: Path) -> list[dict[str, Any]]:
    """The pair rows of ``pairs_dir/manifest.jsonl`` (skipped faces left out)."""
    path = Path(pairs_dir) / "manifest.jsonl"
    if not path.is_file():
        raise ValueError(f"pairs: {path} not found (write pairs with `facedit data blend-pairs`)")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [row for row in rows if "skipped" not in row]
    if not rows:
        raise ValueError(f"pairs: {path} lists no pairs")
    return rows


__all__ = [
    "FILES",
    "RECIPES",
    "SOURCES",
    "Pair",
    "appearance_drift",
    "composites",
    "list_images",
    "load_face",
    "local_warp",
    "read_manifest",
    "read_png",
    "synthetic_pair",
    "write_pairs",
]
