"""Per-stage time, images/s and peak memory of the edit pipeline at batch 1, 4 and 8.

Run from the repository root: ``.venv/bin/python -m bench.pipeline [--runs 3]``.

Rows: the ``toy`` preset on the CPU, and — when a GPU is available — full-size models with
random weights (StyleGAN2 1024 decoder, e4e IR-SE50 encoder at 256, Diff-CAM, MAResU-Net at
1024) in fp32 and bf16. Stage times come from the pipeline's own stage callback (the device
is synchronised at each stage boundary); peak memory is CUDA's allocator peak on GPU and the
process's peak RSS on CPU.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Sequence

import torch

from shared.core.edits import parse_edit
from shared.editing.bundle import ModelBundle, toy_bundle
from shared.editing.pipeline import STAGES, EditPipeline, PipelineConfig

BATCH_SIZES = (1, 4, 8)


def full_size_bundle(device: torch.device, dtype: torch.dtype) -> ModelBundle:
    """Official-size networks with random weights (what a GPU worker holds)."""
    from shared.models.diffcam import DiffCam
    from shared.models.directions import toy_registry
    from shared.models.encoders import Encoder4Editing, WPlusEncoder
    from shared.models.maresunet import MAResUNet
    from shared.models.stylegan2 import Generator

    torch.manual_seed(0)
    generator = Generator(1024)
    encoder = WPlusEncoder(Encoder4Editing(), torch.zeros(18, 512))
    modules = (generator, encoder, DiffCam(), MAResUNet())
    for module in modules:
        module.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return ModelBundle(
        preset="random-full", encoder=encoder, generator=generator,
        directions=toy_registry(512, 18), encoder_size=256, output_size=1024, device=device,
        diffcam=modules[2], suppressor_net=modules[3],
        diffcam_classes={"smile": 15, "age": 16, "glasses": 7, "pose": 0},
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    pipeline: EditPipeline, batch: int, runs: int, dtype: torch.dtype
) -> dict[str, float]:
    device = pipeline.bundle.device
    size = pipeline.output_size
    images = torch.rand(batch, 3, size, size, device=device)
    edits = [[parse_edit("smile=+3")] for _ in range(batch)]
    totals: dict[str, list[float]] = {stage: [] for stage in STAGES}
    walls = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    for run in range(runs + 1):  # the first run warms up
        marks: dict[str, float] = {}
        _sync(device)
        start = last = time.perf_counter()

        def on_stage(stage: str, marks: dict[str, float] = marks) -> None:
            nonlocal last
            _sync(device)
            now = time.perf_counter()
            marks[stage] = now - last
            last = now

        with autocast:
            pipeline(images, edits, on_stage=on_stage)
        _sync(device)
        if run:
            walls.append(time.perf_counter() - start)
            for stage in STAGES:
                totals[stage].append(marks.get(stage, 0.0))
    median = sorted(walls)[len(walls) // 2]
    row = {stage: sorted(v)[len(v) // 2] * 1000 for stage, v in totals.items()}
    row["images/s"] = batch / median
    if device.type == "cuda":
        row["peak MiB"] = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        row["peak MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--suppressor", default="maresunet")
    args = parser.parse_args(argv)
    configs = [("toy", torch.device("cpu"), torch.float32)]
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        configs += [("full", gpu, torch.float32), ("full", gpu, torch.bfloat16)]
    header = ["models", "device", "dtype", "batch", *[f"{s} ms" for s in STAGES], "images/s",
              "peak MiB"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, device, dtype in configs:
        bundle = toy_bundle(device) if name == "toy" else full_size_bundle(device, torch.float32)
        pipeline = EditPipeline(bundle, PipelineConfig(suppressor=args.suppressor))
        for batch in BATCH_SIZES:
            row = measure(pipeline, batch, args.runs, dtype)
            cells = [name, device.type, str(dtype).replace("torch.", ""), str(batch)]
            cells += [f"{row[s]:.1f}" for s in STAGES]
            cells += [f"{row['images/s']:.2f}", f"{row['peak MiB']:.0f}"]
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
