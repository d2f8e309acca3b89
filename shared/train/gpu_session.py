"""One suppressor training session inside a time budget — the prepared script for a GPU lease.

Builds synthetic training pairs from a folder of aligned faces (unless ``--pairs`` is given),
times a few training steps, sizes the run (cosine schedule and all) to what is left of the
budget, trains, and evaluates the result on held-out pairs, printing the blend table
(suppressor vs naive, binary and Poisson composites) and writing the checkpoint, log, curves
and report under ``--out``. It imports only the training modules (torch, numpy, scipy,
OpenCV, Pillow, numba), so it runs on a machine that has no facedit service dependencies.

    python -m shared.train.gpu_session --faces FACES/dev --eval-pairs PHOTO_PAIRS --out OUT \\
        --budget-s 480 [--size 256] [--base-width 64] [--batch 16] [--device cuda]

Held-out evaluation pairs come from ``facedit data blend-pairs FACES/photos DIR --source
synthetic --size S --align`` (alignment needs dlib: build them beforehand).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from shared.models.maresunet import load_maresunet
from shared.train.evaluate import evaluate_blend
from shared.train.pairs import write_pairs
from shared.train.suppressor import TrainConfig, train_suppressor

PROBE_STEPS = 20
EVAL_RESERVE_S = 60.0  # kept back from the budget for the evaluation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, help="aligned faces to build training pairs from")
    parser.add_argument("--pairs", type=Path, help="existing training pairs (skips --faces)")
    parser.add_argument("--per-image", type=int, default=16)
    parser.add_argument("--limit", type=int, help="use the first N faces only")
    parser.add_argument("--eval-pairs", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget-s", type=float, default=480.0)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--base-width", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-4)
    # Label-preserving; no effect measurable in 5000-step CPU runs (bench/RESULTS.md), kept
    # on against the overfitting that long runs on few faces showed.
    parser.add_argument("--colour-jitter", type=float, default=0.1)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    if (args.faces is None) == (args.pairs is None):
        parser.error("give exactly one of --faces and --pairs")
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{gpu}; torch {torch.__version__}", flush=True)

    pairs = args.pairs
    if pairs is None:
        pairs = args.out / "pairs"
        rows = write_pairs(args.faces, pairs, source="synthetic", size=args.size,
                           per_image=args.per_image, limit=args.limit)
        print(f"{len(rows)} training pairs in {time.perf_counter() - started:.0f} s", flush=True)

    def config(out: Path, steps: int) -> TrainConfig:
        return TrainConfig(pairs=str(pairs), out=str(out), size=args.size, steps=steps,
                           batch=args.batch, lr=args.lr, device=args.device,
                           base_width=args.base_width, colour_jitter=args.colour_jitter,
                           val_every=max(steps // 10, 1), save_every=max(steps // 10, 1))

    probe = train_suppressor(config(args.out / "probe.pt", 10**6), stop_at=PROBE_STEPS,
                             progress=False)
    per_step = probe.seconds / PROBE_STEPS
    left = args.budget_s - (time.perf_counter() - started) - EVAL_RESERVE_S
    steps = max(int(left / (per_step * 1.1)), PROBE_STEPS)  # 10 % for validation and saving
    print(f"{per_step:.3f} s/step → {steps} steps", flush=True)
    checkpoint = args.out / "suppressor.pt"
    result = train_suppressor(config(checkpoint, steps), progress=False)
    print(f"trained {result.step} steps in {result.seconds:.0f} s: {result.metrics}", flush=True)
    if torch.cuda.is_available():
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")

    network = load_maresunet(checkpoint)
    report = evaluate_blend(args.eval_pairs, network, device=result_device(args.device),
                            figure=args.out / "figure.png")
    report.write(args.out / "eval")
    print(report.markdown())
    print(f"total {time.perf_counter() - started:.0f} s")


def result_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


if __name__ == "__main__":
    main()
