"""A strength sweep in one job against the same edits as separate jobs.

Run from the repository root: ``.venv/bin/python -m bench.sweep [--preset toy|full]``.

A sweep of N steps inverts its input once, renders the reconstruction G(w) once and the N
edited images; N separate one-edit jobs (what a client had to submit before sweeps existed)
invert and reconstruct N times. Both go through :meth:`EditPipeline.run` with the default
options (``suppressor=auto`` → exact Poisson, ``feature_diff`` mask) on one real aligned face;
the table gives seconds per input and the ratio. ``full``: official-size networks with random
weights (1024² StyleGAN2, IR-SE50 e4e encoder) as in ``bench/pipeline.py``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image

from bench.poisson import faces_dir
from shared.core.edits import expand_variants, parse_edit
from shared.editing.bundle import toy_bundle
from shared.editing.imaging import to_tensor
from shared.editing.pipeline import EditPipeline

STEPS = (3, 7)


def _face(size: int) -> torch.Tensor:
    path = sorted(faces_dir().glob("*.jpg"))[0]  # faces_dir() is the dev/ folder
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB").resize((size, size), Image.LANCZOS))
    return to_tensor(pixels)


def _seconds(pipeline: EditPipeline, image: torch.Tensor, variants: list, runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        pipeline.run(image, [variants])
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=("toy", "full"), default="toy")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    if args.preset == "toy":
        bundle = toy_bundle()
    else:
        from bench.pipeline import full_size_bundle

        bundle = full_size_bundle(torch.device("cpu"), torch.float32)
    pipeline = EditPipeline(bundle, max_items=8)
    image = _face(bundle.output_size)
    one = [parse_edit("smile=+2")]
    pipeline.run(image, [[one]])  # warm-up (and numba's compile)
    single = _seconds(pipeline, image, [one], args.runs)
    print(f"preset {args.preset}, torch threads {torch.get_num_threads()}, "
          f"output {pipeline.output_size}², suppressor {pipeline.suppressor_name}")
    print("| edits of one input | separate jobs (s) | one sweep job (s) | speed-up |")
    print("|---|---:|---:|---:|")
    print(f"| 1 | {single:.2f} | {single:.2f} | 1.00× |")
    for steps in STEPS:
        variants = expand_variants([parse_edit(f"smile=-3:3:{steps}")])
        separate = sum(_seconds(pipeline, image, [v], args.runs) for v in variants)
        sweep = _seconds(pipeline, image, variants, args.runs)
        print(f"| {steps} | {separate:.2f} | {sweep:.2f} | {separate / sweep:.2f}× |")


if __name__ == "__main__":
    main()
