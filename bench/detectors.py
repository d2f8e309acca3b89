"""Face detector recall: dlib's HOG and CNN (MMOD) detectors on the group photos.

The group photos of ``<faces-dir>/photos`` (``../shared/data/faces`` beside the repository, or
``$FACEDIT_TEST_FACES_DIR``) carry hand-marked face centres (:data:`FACES`). Each detector runs
as ``shared.editing.faces.detect_faces`` runs it, on the same ``max_detect_side`` downscale as
alignment's default: HOG at upsample 1 (what alignment uses) and CNN at each
``--cnn-upsample``. A detection is a hit when its box contains a hand-marked centre not yet
claimed by a larger box; recall = hits / faces, and the detections that hit nothing are
false positives (FP). Seconds are one timed run per photo after a warm-up run of each
detector on a small image (which loads its model).

    .venv/bin/python -m bench.detectors [--faces-dir DIR] [--cnn-upsample 0 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from shared.editing.faces import detect_faces

MAX_DETECT_SIDE = 1600  # detect_faces' default, which alignment uses


class Face(NamedTuple):
    x: int  # approximate face centre (about the nose), photo pixels
    y: int
    who: str


# Counted and marked by eye once (2026-12-02), after looking at all 73 photos: a face counts
# when its eyes or, in profile, an eye and the nose are visible and it is in focus and at
# least ~20 px wide, even if the frame or another person cuts part of it off. Defocused
# bystanders in the background of portraits (deepface__img16, img31, img38, img62,
# face_recognition__obama2, deepface__target) and heads turned away from the camera
# (CodeFormer__03) are not counted, so those photos are not group photos here; nor is the
# ~10 px figure behind the first person of CodeFormer__00.
FACES: dict[str, list[Face]] = {
    "CodeFormer__00.jpg": [  # 491 × 310, four people standing, faces ~45 px
        Face(78, 103, "left, glasses"),
        Face(195, 103, "second from left"),
        Face(300, 103, "third from left, glasses"),
        Face(412, 88, "right"),
    ],
    "CodeFormer__01.jpg": [  # 248 × 189, four faces ~35 px, scanned magazine photo
        Face(60, 80, "left"),
        Face(126, 50, "top"),
        Face(190, 100, "right"),
        Face(120, 145, "bottom"),
    ],
    "face_recognition__kit_with_rose.jpg": [  # 501 × 700, two people, faces ~75 px
        Face(118, 170, "woman"),
        Face(302, 160, "man"),
    ],
    "deepface__selfie-many-people.jpg": [  # 600 × 604, seven faces 60–200 px
        Face(35, 295, "left edge, top woman, cut by the frame"),
        Face(25, 480, "left edge, bottom woman, half cut by the frame"),
        Face(145, 370, "woman, centre left"),
        Face(255, 195, "bearded man, back"),
        Face(420, 215, "man, centre right"),
        Face(570, 150, "man with glasses, top right, half cut by the frame"),
        Face(545, 440, "selfie taker, bottom right, large and cut by the frame"),
    ],
    "deepface__img59.jpg": [  # 1600 × 1073, interview on stage
        Face(1020, 400, "speaker, frontal"),
        Face(100, 290, "interviewer, profile with glasses, cut by the left edge"),
    ],
}


@dataclass
class Run:
    found: int
    hits: int
    missed: list[str]
    seconds: float


def faces_root() -> Path:
    env = os.environ.get("FACEDIT_TEST_FACES_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"


def load(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).copy()


def contains(box: Any, face: Face) -> bool:
    return box.left() <= face.x <= box.right() and box.top() <= face.y <= box.bottom()


def match(boxes: list[Any], faces: list[Face]) -> list[Face]:
    """The hand-marked faces some box contains, each claimed by one box (largest first, as
    detect_faces orders them; a box holding several centres claims the nearest)."""
    left = list(faces)
    for box in boxes:
        inside = [face for face in left if contains(box, face)]
        if inside:
            centre = box.center()
            left.remove(min(inside, key=lambda f: np.hypot(f.x - centre.x, f.y - centre.y)))
    return [face for face in faces if face not in left]


def run(pixels: np.ndarray, faces: list[Face], detector: str, upsample: int) -> Run:
    start = time.perf_counter()
    boxes = detect_faces(
        pixels, upsample=upsample, max_detect_side=MAX_DETECT_SIDE, detector=detector
    )
    seconds = time.perf_counter() - start
    hits = match(boxes, faces)
    missed = [f.who for f in faces if f not in hits]
    return Run(found=len(boxes), hits=len(hits), missed=missed, seconds=seconds)


def warm_up(configs: list[tuple[str, int]]) -> None:
    small = np.full((64, 64, 3), 128, np.uint8)
    for detector, upsample in configs:
        detect_faces(small, upsample=upsample, detector=detector)


def cells(faces: int, result: Run) -> list[str]:
    return [
        f"{result.found} ({result.found - result.hits} FP)",
        f"{result.hits}/{faces} = {result.hits / faces:.0%}",
        f"{result.seconds:.2f}",
    ]


def machine() -> str:
    import dlib

    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(
            line.split(":", 1)[1].strip()
            for line in lscpu.splitlines()
            if line.startswith("Model name")
        )
    except (OSError, subprocess.CalledProcessError, StopIteration):
        model = platform.processor() or "unknown CPU"
    cuda = "with" if dlib.DLIB_USE_CUDA else "without"
    return (
        f"{model}, {os.cpu_count()} cores, {platform.machine()}; dlib {dlib.__version__} "
        f"({cuda} CUDA), Python {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--faces-dir",
        type=Path,
        default=faces_root(),
        help="folder holding photos/ (default: ../shared/data/faces)",
    )
    parser.add_argument(
        "--cnn-upsample",
        type=int,
        nargs="+",
        default=[0, 1],
        help="pyramid up-samplings of the CNN runs (default: 0 1)",
    )
    args = parser.parse_args()

    configs = [("hog", 1)] + [("cnn", up) for up in args.cnn_upsample]
    names = [f"{detector.upper()} ×{up}" for detector, up in configs]
    warm_up(configs)
    header = ["photo", "size", "faces (by hand)"]
    for name in names:
        header += [f"{name} found", f"{name} recall", f"{name} s"]
    rows = [header, ["---"] * 3 + ["---:"] * (len(header) - 3)]
    totals = [Run(0, 0, [], 0.0) for _ in configs]
    misses: list[str] = []
    for photo, faces in FACES.items():
        pixels = load(args.faces_dir / "photos" / photo)
        row = [photo, f"{pixels.shape[1]}×{pixels.shape[0]}", str(len(faces))]
        for name, (detector, upsample), total in zip(names, configs, totals, strict=True):
            result = run(pixels, faces, detector, upsample)
            row += cells(len(faces), result)
            total.found += result.found
            total.hits += result.hits
            total.seconds += result.seconds
            misses += [f"- {name} misses {photo}: {who}" for who in result.missed]
        rows.append(row)
        print(f"{photo} done", flush=True)
    count = sum(len(faces) for faces in FACES.values())
    rows.append(["**total**", "", str(count)] + [c for t in totals for c in cells(count, t)])

    print(f"\n{machine()}; max_detect_side {MAX_DETECT_SIDE}\n")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print("\n" + ("\n".join(misses) if misses else "No hand-marked face was missed."))


if __name__ == "__main__":
    main()
