"""Poisson blending speed: cv2.seamlessClone vs facedit's opencv and exact modes.

Real aligned photos (``../shared/data/faces/dev`` or ``$FACEDIT_TEST_FACES_DIR/dev``) are
the source/target pairs, resized to S×S; masks are a centred ellipse covering ~30 % (semi-axes
0.34S × 0.28S, the case of REFERENCE.md Part B2) and the mouth / lower-face regions of
``shared.train.face_regions``. Each round times every method once, in turn, so that the ratios see
the same machine state; the table gives min / median over the rounds after one warm-up.
``cv2`` gets ``mask.copy()`` on every call (it mutates its mask). CPU rows are given for each
``--implementations`` (default: ``compiled``, the CPU default, and ``tensor``, the torch code
that CUDA runs); GPU rows (tensor) are added when CUDA is available. The first call of the
compiled code compiles it (numba, cached on disk): the warm-up round absorbs it.

    python bench/poisson.py [--sizes 256 512 1024] [--rounds 7] [--implementations compiled]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from shared.blend import poisson_blend, poisson_blend_with_stats
from shared.train.face_regions import region_mask

PAIR = ("CelebAMask-HQ__0.jpg", "CelebAMask-HQ__1.jpg")


def faces_dir() -> Path:
    env = os.environ.get("FACEDIT_TEST_FACES_DIR")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"
    return root / "dev"


def load(name: str, size: int) -> np.ndarray:
    with Image.open(faces_dir() / name) as im:
        return np.asarray(im.convert("RGB").resize((size, size), Image.BICUBIC)).copy()


def ellipse(size: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    return ((yy - c) / (0.28 * size)) ** 2 + ((xx - c) / (0.34 * size)) ** 2 <= 1


def timed(fn: Callable[[], object], sync: Callable[[], None]) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def machine() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                     if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        model = platform.processor() or "unknown CPU"
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"{model}, {os.cpu_count()} cores{gpu}; torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), opencv {cv2.__version__} "
            f"({cv2.getNumThreads()} threads), Python {platform.python_version()}")


def _blender(src: torch.Tensor, dst: torch.Tensor, mask: torch.Tensor, mode: str, impl: str):
    return lambda: poisson_blend(src, dst, mask, mode=mode, implementation=impl)  # type: ignore[arg-type]


def bench_case(size: int, mask_name: str, rounds: int, implementations: list[str]) -> list[dict]:
    src8, dst8 = load(PAIR[0], size), load(PAIR[1], size)
    inside = ellipse(size) if mask_name == "ellipse" else region_mask(size, mask_name) > 0.5
    m8 = inside.astype(np.uint8) * 255
    ys, xs = np.nonzero(m8[1:-1, 1:-1])
    y0, y1, x0, x1 = ys.min() + 1, ys.max() + 2, xs.min() + 1, xs.max() + 2
    centre = (x0 + (x1 - x0) // 2, y0 + (y1 - y0) // 2)

    def cv2_clone() -> np.ndarray:
        return cv2.seamlessClone(src8, dst8, m8.copy(), centre, cv2.NORMAL_CLONE)

    runs = [("cpu", impl) for impl in implementations]
    runs += [("cuda", "tensor")] if torch.cuda.is_available() else []
    rows = []
    for device, impl in runs:
        src = torch.from_numpy(src8).permute(2, 0, 1)[None].float().div(255).to(device)
        dst = torch.from_numpy(dst8).permute(2, 0, 1)[None].float().div(255).to(device)
        mask = torch.from_numpy(inside)[None, None].float().to(device)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        methods = {
            "cv2": cv2_clone,
            "opencv": _blender(src, dst, mask, "opencv", impl),
            "exact": _blender(src, dst, mask, "exact", impl),
        }
        times: dict[str, list[float]] = {k: [] for k in methods}
        for fn in methods.values():  # warm-up
            timed(fn, sync)
        for _ in range(rounds):
            for k, fn in methods.items():
                times[k].append(timed(fn, sync))
        ours = poisson_blend(src, dst, mask, mode="opencv", implementation=impl)  # type: ignore[arg-type]
        ours = ours[0].permute(1, 2, 0).cpu().numpy()
        agree = np.abs(np.floor(ours * 255 + 1e-3) - cv2_clone().astype(np.float64)) <= 2
        _, stats = poisson_blend_with_stats(src, dst, mask, implementation=impl)  # type: ignore[arg-type]
        rows.append({
            "S": size, "mask": mask_name, "device": f"{device} {impl}",
            "coverage": float(inside.mean()), "bbox": f"{x1 - x0}×{y1 - y0}",
            "times": {k: (min(v), statistics.median(v)) for k, v in times.items()},
            "iterations": stats.iterations[0], "agree": float(agree.mean()),
        })
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| S | mask | cover | bbox | device | cv2 ms | opencv ms | opencv/cv2 | exact ms "
        "| exact/cv2 | CG its | opencv≈cv2 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = r["times"]
        cv_min, cv_med = t["cv2"]
        cells = [str(r["S"]), r["mask"], f"{100 * r['coverage']:.1f}%", r["bbox"], r["device"],
                 f"{1e3 * cv_min:.1f} / {1e3 * cv_med:.1f}"]
        for k in ("opencv", "exact"):
            lo, med = t[k]
            cells += [f"{1e3 * lo:.1f} / {1e3 * med:.1f}",
                      f"{lo / cv_min:.2f} / {med / cv_med:.2f}"]
        cells += [str(r["iterations"]), f"{100 * r['agree']:.3f}%"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--masks", nargs="+", default=["ellipse", "mouth", "lower_face"])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--implementations", nargs="+", default=["compiled", "tensor"],
                        choices=["compiled", "tensor"])
    args = parser.parse_args()
    if args.rounds < 5:
        parser.error("--rounds must be ≥ 5")
    print(f"machine: {machine()}")
    try:
        print(f"load average: {os.getloadavg()[0]:.2f}")
    except OSError:
        pass
    rows = []
    for size in args.sizes:
        for mask_name in args.masks:
            rows += bench_case(size, mask_name, args.rounds, args.implementations)
    print("times: min / median ms; ratios: ours ÷ cv2 (min / median; < 1 = faster than cv2)")
    print(table(rows))


if __name__ == "__main__":
    main()
