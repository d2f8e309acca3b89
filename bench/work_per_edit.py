"""Work per edit (issue #16): seconds and FLOPs for 1 edit, 3 edits and a 7-step sweep of one
input, with official-size networks and random weights on this machine's CPU.

Run from the repository root: ``.venv/bin/python -m bench.work_per_edit [--write-results]``.

- **before**: what facedit did before issue #16 — each edit a separate pipeline call (its own
  inversion) with the reconstruction G(w) rendered at the full 1024²;
- **after**: one pipeline call for all the edits of the input (one inversion, one
  reconstruction), G(w) rendered only up to the 256² the mask reads;
- **SDEA-equivalent**: the stack of the SDEA paper per edit, with the same network sizes —
  pSp (GradualStyleEncoder IR-SE50 at 256²), two full 1024² syntheses G(w) and G(w'), Diff-CAM
  forward and backward (Grad-CAM) on the pair at 256², and the 174 M-parameter deghosting
  network (128² composite → 1024²); SDEA shares nothing between edits.

Ours runs the default mask (feature difference) and the MAResU-Net suppressor at 1024².
FLOPs are counted per network call (``torch.utils.flop_counter`` on the meta device: convs and
matmuls, 2 per multiply-add; Diff-CAM's forward — Grad-CAM's backward through the
classifier head alone is not counted) and multiplied by the calls each
run made, which forward hooks count during the timed run.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import shared.editing.pipeline as pipeline_module
from bench.pipeline import full_size_bundle
from bench.results import write_section
from bench.sweep import _face
from shared.core.contracts import PipelineConfig
from shared.core.edits import expand_variants, parse_edit
from shared.editing.pipeline import EditPipeline
from shared.models.diffcam import DiffCam
from shared.models.encoders import GradualStyleEncoder
from shared.models.maresunet import MAResUNet
from shared.models.sdea_deghosting import Deghosting
from shared.models.stylegan2 import Generator

CASES = {
    "1 edit": ["smile=+2"],
    "3 edits": ["smile=+2", "age=-2", "pose=+1"],
    "7-step sweep": ["smile=-3:3:7"],
}


# -- FLOPs of one call of each network ----------------------------------------------------------


def _flops(build: Callable[[], torch.nn.Module], call: Callable[[Any], Any]) -> float:
    with torch.device("meta"):
        model = build().eval()
    with FlopCounterMode(display=False) as counter:
        call(model)
    return counter.get_total_flops()


def _w() -> torch.Tensor:
    return torch.randn(1, 18, 512, device="meta")


def call_flops() -> dict[str, float]:
    def synth(resolution: int | None) -> Callable[[Any], Any]:
        return lambda g: g([_w()], input_is_latent=True, randomize_noise=False,
                           max_resolution=resolution)

    with torch.no_grad():
        table = {
            "encoder": _flops(GradualStyleEncoder,
                              lambda e: e(torch.rand(1, 3, 256, 256, device="meta"))),
            "G 1024": _flops(lambda: Generator(1024), synth(None)),
            "G 256": _flops(lambda: Generator(1024), synth(256)),
            "MAResU-Net 1024": _flops(MAResUNet,
                                      lambda m: m(torch.rand(1, 3, 1024, 1024, device="meta"))),
            "deghosting": _flops(Deghosting,
                                 lambda d: d(torch.rand(1, 3, 128, 128, device="meta"))),
            # Grad-CAM's backward runs only through the classifier's head (the features below
            # the target layer are computed without gradients): its FLOPs are not counted.
            "Diff-CAM": _flops(DiffCam,
                               lambda n: n(torch.rand(1, 6, 256, 256, device="meta"))),
        }
    return table


# -- our pipeline, counting its network calls ---------------------------------------------------


def _hooked(bundle: Any, calls: Counter) -> list[Any]:
    def on_generator(_module: Any, _args: Any, output: Any) -> None:
        image = output[0] if isinstance(output, tuple) else output
        calls[f"G {image.shape[-1]}"] += image.shape[0]

    def counting(name: str) -> Callable[..., None]:
        def hook(_module: Any, args: Any, _output: Any) -> None:
            calls[name] += args[0].shape[0]

        return hook

    return [bundle.generator.register_forward_hook(on_generator),
            bundle.encoder.register_forward_hook(counting("encoder")),
            bundle.suppressor_net.register_forward_hook(counting("MAResU-Net 1024"))]


def _variants(edits: list[str]) -> list[tuple[Any, ...]]:
    """One sweep → its steps; several fixed edits → one variant each."""
    if len(edits) == 1:
        return expand_variants([parse_edit(edits[0])])
    return [(parse_edit(e),) for e in edits]


def run_ours(pipeline: EditPipeline, image: torch.Tensor, edits: list[str], before: bool,
             calls: Counter) -> float:
    variants = _variants(edits)
    original = pipeline_module._reconstruction_resolution
    if before:  # the reconstruction at full resolution, as before issue #16
        pipeline_module._reconstruction_resolution = lambda _activation: None
    hooks = _hooked(pipeline.bundle, calls)
    try:
        started = time.perf_counter()
        if before:
            for variant in variants:  # a separate job each: inverted again each time
                pipeline.run(image, [[variant]])
        else:
            pipeline.run(image, [variants])
        return time.perf_counter() - started
    finally:
        pipeline_module._reconstruction_resolution = original
        for hook in hooks:
            hook.remove()


# -- the SDEA-equivalent stack ------------------------------------------------------------------


class SdeaStack:
    """pSp → G(w), G(w') at 1024² → Diff-CAM (Grad-CAM) at 256² → naive composite → deghosting
    128² → 1024², per edit, random weights of the official sizes."""

    def __init__(self, generator: Generator) -> None:
        torch.manual_seed(1)
        self.generator = generator
        self.encoder = GradualStyleEncoder().eval().requires_grad_(False)
        self.diffcam = DiffCam().eval().requires_grad_(False)
        self.deghosting = Deghosting().eval().requires_grad_(False)
        self.direction = torch.randn(18, 512) * 0.1

    def edit(self, image: torch.Tensor, strength: float, calls: Counter) -> torch.Tensor:
        x256 = F.interpolate(image * 2 - 1, size=256, mode="area")
        w = self.encoder(x256) + 0.0
        calls["encoder"] += 1
        synth = dict(input_is_latent=True, randomize_noise=False)
        inverted, _ = self.generator([w], **synth)
        edited, _ = self.generator([w + strength * self.direction], **synth)
        calls["G 1024"] += 2
        pair = torch.cat([F.interpolate(inverted, size=256, mode="area"),
                          F.interpolate(edited, size=256, mode="area")], dim=1)
        mask = self.diffcam.cam(pair, 15)[:, None]
        calls["Diff-CAM"] += 1
        mask = F.interpolate(mask, size=1024, mode="bilinear", align_corners=False)
        composite = mask * edited + (1 - mask) * (image * 2 - 1)
        result = self.deghosting(F.interpolate(composite, size=128, mode="area"))
        calls["deghosting"] += 1
        return result


def run_sdea(stack: SdeaStack, image: torch.Tensor, edits: list[str], calls: Counter) -> float:
    strengths = [float(v[0].strength) for v in _variants(edits)]
    started = time.perf_counter()
    for strength in strengths:
        stack.edit(image, strength, calls)
    return time.perf_counter() - started


# -- report -------------------------------------------------------------------------------------


def gflops(calls: Counter, table: dict[str, float]) -> float:
    missing = set(calls) - set(table)
    if missing:
        raise RuntimeError(f"no FLOP count for {sorted(missing)}")
    return sum(count * table[name] for name, count in calls.items()) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    table = call_flops()
    bundle = full_size_bundle(torch.device("cpu"), torch.float32)
    config = PipelineConfig.from_options({"suppressor": "maresunet"})
    pipeline = EditPipeline(bundle, max_items=8).with_config(config)
    sdea = SdeaStack(bundle.generator)
    image = _face(1024)
    run_ours(pipeline, image, ["smile=+1"], False, Counter())  # warm-up
    run_sdea(sdea, image, ["smile=+1"], Counter())
    rows = []
    for case, edits in CASES.items():
        runs = {
            "before": lambda c, e=edits: run_ours(pipeline, image, e, True, c),
            "after": lambda c, e=edits: run_ours(pipeline, image, e, False, c),
            "SDEA": lambda c, e=edits: run_sdea(sdea, image, e, c),
        }
        measured = {}
        for label, run in runs.items():
            calls: Counter = Counter()
            seconds = run(calls)
            measured[label] = (seconds, gflops(calls, table))
            print(f"{case} {label}: {seconds:.1f} s, {measured[label][1]:.0f} GFLOP, "
                  f"{dict(calls)}", flush=True)
        rows.append((case, len(_variants(edits)), measured))
    lines = ["| edits of one input | before: s | before: GFLOP | after: s | after: GFLOP | "
             "after ÷ before (time) | SDEA-equivalent: s | SDEA: GFLOP | after ÷ SDEA (time) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for case, _n, m in rows:
        (bs, bf), (as_, af), (ss, sf) = m["before"], m["after"], m["SDEA"]
        lines.append(f"| {case} | {bs:.1f} | {bf:.0f} | {as_:.1f} | {af:.0f} | {as_ / bs:.2f} | "
                     f"{ss:.1f} | {sf:.0f} | {as_ / ss:.2f} |")
    per_edit = ["| edits of one input | before: s/edit | after: s/edit | SDEA: s/edit | "
                "after: GFLOP/edit | SDEA: GFLOP/edit |", "|---|---:|---:|---:|---:|---:|"]
    for case, n, m in rows:
        per_edit.append(f"| {case} | {m['before'][0] / n:.2f} | {m['after'][0] / n:.2f} | "
                        f"{m['SDEA'][0] / n:.2f} | {m['after'][1] / n:.0f} | "
                        f"{m['SDEA'][1] / n:.0f} |")
    calls_table = ["| network call | GFLOP |", "|---|---:|"] + [
        f"| {name} | {value / 1e9:.1f} |" for name, value in table.items()]
    text = "\n".join(lines) + "\n\n" + "\n".join(per_edit) + "\n\n" + "\n".join(calls_table)
    print(text)
    if args.write_results:
        _write(text)


def _write(tables: str) -> None:
    machine = (f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
               f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, no GPU")
    section = f"""## Work per edit

`.venv/bin/python -m bench.work_per_edit`: official-size networks with random weights (1024²
StyleGAN2, IR-SE50 e4e encoder, Diff-CAM ResNet-101, MAResU-Net at 1024²) on {machine}; one
real aligned face, one run of each (after a warm-up). *Before*: each edit its own pipeline call
(its own inversion) with G(w) at 1024², as before issue #16. *After*: all edits of the input in
one call — one inversion, one G(w) rendered only to 256² for the mask. *SDEA-equivalent*: per
edit pSp, two 1024² syntheses, Diff-CAM forward + backward, and the 174 M-parameter deghosting
network (see the module docstring). GFLOP = the network calls each run made (counted by hooks)
× the FLOPs of one call (`torch.utils.flop_counter`, convs and matmuls).

{tables}
"""
    write_section(section)


if __name__ == "__main__":
    main()
