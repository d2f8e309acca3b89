"""Sample inputs for ``make demo``: public-domain portraits shipped with scikit-image."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shared.imaging import encode_image


def write_demo_inputs(folder: Path) -> list[Path]:
    """Write a few variants of scikit-image's astronaut portrait (NASA, public domain)."""
    from skimage import data

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
