"""How long the before/after gallery takes for a large run, cold and warm.

Run from the repository root: ``.venv/bin/python -m bench.gallery [--rows 1000]``.

Writes ``--rows`` distinct 1024² JPEG inputs and 1024² PNG results into a scratch folder (a
real dev face with a different tint per row, so no two files are alike), then times
:func:`facedit.gallery.write_gallery` twice: cold (every thumbnail made) and warm (a rerun
reuses them), and the page's size.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.poisson import faces_dir
from facedit.gallery import GalleryImage, GalleryRow, GalleryVariant, write_gallery


def _rows(folder: Path, count: int) -> list[GalleryRow]:
    source = sorted(faces_dir().glob("*.jpg"))[0]
    with Image.open(source) as image:
        face = np.asarray(image.convert("RGB").resize((1024, 1024)), dtype=np.float32)
    rows = []
    for i in range(count):
        tint = 0.85 + 0.3 * np.array([(i * 37 % 101) / 100, (i * 53 % 97) / 96, (i % 89) / 88])
        original = folder / f"input{i:04d}.jpg"
        result = folder / f"input{i:04d}.smile+2.png"
        Image.fromarray(np.clip(face * tint, 0, 255).astype(np.uint8)).save(original, quality=90)
        Image.fromarray(np.clip(face[:, ::-1] * tint, 0, 255).astype(np.uint8)).save(
            result, compress_level=1)
        variant = GalleryVariant("smile+2", GalleryImage("result", result))
        rows.append(GalleryRow(original.name, "succeeded", original, (variant,)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="facedit-bench-gallery-") as scratch:
        folder = Path(scratch)
        rows = _rows(folder, args.rows)
        timings = []
        for _ in ("cold", "warm"):
            started = time.perf_counter()
            index = write_gallery(folder, rows, title="bench", workers=args.workers)
            timings.append(time.perf_counter() - started)
        thumbs = sum(p.stat().st_size for p in (folder / "thumbs").iterdir())
        print("| rows | thumbnails | cold (s) | warm (s) | index.html (KiB) | thumbs (MiB) |")
        print("|---:|---:|---:|---:|---:|---:|")
        print(f"| {args.rows} | {2 * args.rows} | {timings[0]:.1f} | {timings[1]:.2f} | "
              f"{index.stat().st_size / 1024:.0f} | {thumbs / 2**20:.1f} |")


if __name__ == "__main__":
    main()
