"""``facedit demo`` / ``make demo``: the method shown on sample portraits, as a gallery.

Without GAN weights an attribute edit is meaningless, but the paper's point — the seams and
colour mismatch of naive compositing, removed by Poisson blending — shows on real photos.
Each portrait (scikit-image's astronaut, NASA, public domain, in a few variants) is aligned and
given local edits that need no GAN: the synthetic recipe of :mod:`shared.train.pairs`
(re-rendered appearance, a warped or swapped facial part inside a Diff-CAM-like mask). A row
shows the edit, its naive composite and the Poisson composite, each with its seam score
(:func:`shared.train.seam.seam_score`, lower is smoother). Then the same portraits go through
the whole pipeline with the toy models (``facedit run``), in rows labelled as untrained.

Only ``facedit demo`` imports this module (when it runs), so its imports are all at the top.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from skimage import data

from facedit.cli.loaders import load_pipeline
from facedit.cli.options import job_options, parse_edits
from facedit.cli.run import TOY_WARNING, edit_into_folder
from facedit.console import say
from facedit.gallery import GalleryImage, GalleryRow, GalleryVariant, write_gallery
from facedit.gallery_rows import rows_from_records
from shared.editing.faces import align_faces
from shared.editing.imaging import decode_image, encode_image, to_uint8
from shared.train.pairs import composites, synthetic_pair
from shared.train.seam import seam_score

SYNTHETIC_SIZE = 512
# (recipe, seed) per row: seeds picked once for a clearly visible seam with each mask shape
SYNTHETIC_RECIPES = (("swap", 3), ("swap", 25), ("swap", 12))
DEMO_EDITS = ("smile=+3", "age=-2")
TOY_NOTE = "toy GAN: untrained models, not a meaningful edit"  # the rows' label


def write_demo_inputs(folder: Path) -> list[Path]:
    """Write a few variants of scikit-image's astronaut portrait (NASA, public domain)."""
    folder.mkdir(parents=True, exist_ok=True)
    portrait = data.astronaut()  # 512x512 RGB
    face = portrait[0:320, 90:410]  # the head and shoulders, roughly centred
    variants = {
        "astronaut.png": portrait,
        "astronaut_face.png": face,
        "astronaut_face_mirrored.png": face[:, ::-1],
        "astronaut_face_warm.png": np.clip(face * np.array([1.08, 1.0, 0.9]), 0, 255),
    }
    paths = []
    for name, pixels in variants.items():
        path = folder / name
        path.write_bytes(encode_image(np.ascontiguousarray(pixels).astype(np.uint8), "png"))
        paths.append(path)
    return paths


def run_demo(out: Path, models: str | None) -> Path:
    """Write the inputs, the synthetic rows and the toy-pipeline rows; return index.html."""
    out = out.absolute()
    inputs = write_demo_inputs(out / "inputs")
    say(f"demo: {len(inputs)} sample portraits in {out / 'inputs'}")
    rows = synthetic_rows(inputs[0], inputs[1], out / "synthetic")
    edits = parse_edits(list(DEMO_EDITS))
    options = {"intermediates": True}
    pipeline = load_pipeline(models, None, edits, options)
    opts = job_options(options, align="auto")
    summary = edit_into_folder(inputs, edits, out / "pipeline", pipeline, opts, None,
                               resume=False, gallery=False)
    toy = pipeline.bundle.preset == "toy"
    for row in rows_from_records(summary.records, out / "pipeline"):
        rows.append(row if not toy else _with_note(row, TOY_NOTE))
    notes = [
        "Local edits without a GAN: naive compositing leaves a seam and a colour step along "
        "the mask; Poisson blending keeps the edit's detail and meets the photo without one. "
        "Seam score: gradient energy the composite adds along the mask outline (lower is "
        "smoother).",
        f"Then the whole pipeline ({', '.join(DEMO_EDITS)}) on the same portraits"
        + (f" — {TOY_WARNING}." if toy else "."),
    ]
    index = write_gallery(out, rows, title="facedit demo: seams removed by Poisson blending",
                          notes=notes)
    say(f"demo gallery: {index}")
    return index


def _with_note(row, note: str):
    return replace(row, note=note)


def synthetic_rows(portrait: Path, donor_photo: Path, folder: Path) -> list:
    """Rows of local edits of the aligned portrait: edit, naive and Poisson composites.

    ``swap`` edits take the part from ``donor_photo``'s face (mirrored), re-rendered with
    another colour and illumination, as a GAN edit would be.
    """
    folder.mkdir(parents=True, exist_ok=True)
    face = _aligned(portrait)
    donor = np.ascontiguousarray(_aligned(donor_photo)[:, ::-1])
    rows = []
    for recipe, seed in SYNTHETIC_RECIPES:
        pair = synthetic_pair(face, np.random.default_rng([seed, 0]), donor, recipe)
        original, edited = _tensor(pair.original), _tensor(pair.edited)
        mask = torch.from_numpy(pair.mask)[None, None]
        naive, poisson = composites(original, edited, mask)
        seams = {name: float(seam_score(image, original, mask)[0])
                 for name, image in (("naive", naive), ("poisson", poisson))}
        stem = f"{portrait.stem}.{recipe}-{pair.params['region']}"
        files = {}
        for name, image in (("original", original), ("edited", edited), ("mask", mask),
                            ("naive", naive), ("poisson", poisson)):
            files[name] = folder / f"{stem}.{name}.png"
            files[name].write_bytes(encode_image(_uint8(image), "png"))
        label = f"{recipe} {pair.params['region'].replace('_', ' ')}"
        variant = GalleryVariant(
            label=f"Poisson ({label})",
            result=GalleryImage("poisson", files["poisson"],
                                f"seam {seams['poisson']:.2f}"),
            extras=(GalleryImage("local edit", files["edited"]),
                    GalleryImage("mask", files["mask"]),
                    GalleryImage("naive", files["naive"], f"seam {seams['naive']:.2f}"),
                    GalleryImage("poisson", files["poisson"],
                                 f"seam {seams['poisson']:.2f}")),
        )  # fmt: skip
        rows.append(GalleryRow(
            name=f"{portrait.name}: {label} (no GAN)", status="succeeded",
            original=files["original"], variants=(variant,),
            details=(("naive seam", f"{seams['naive']:.2f}"),
                     ("Poisson seam", f"{seams['poisson']:.2f}")),
            note="synthetic local edit: naive vs Poisson",
        ))  # fmt: skip
    return rows


def _aligned(path: Path) -> np.ndarray:
    pixels = decode_image(path.read_bytes(), name=str(path)).pixels
    return align_faces(pixels, output_size=SYNTHETIC_SIZE)[0].pixels.astype(np.float32) / 255.0


def _tensor(image: np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()


def _uint8(tensor) -> np.ndarray:
    return to_uint8(tensor[0])
