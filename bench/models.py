"""Model size and speed: parameters, forward FLOPs and latency, with random weights.

Run from the repository root: ``.venv/bin/python -m bench.models [--runs 3] [--only NAME]``.
FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (2 per multiply-add, convs and
matmuls only) on the ``meta`` device, so counting costs no compute. Latency is the median of
``--runs`` timed forwards after one warm-up, batch 1, under ``torch.no_grad``.

To add a model, append a ``BenchEntry(name, builder, input_builder)`` to ``ENTRIES``:
``builder()`` returns the module (random weights), ``input_builder(device)`` returns the
positional and keyword arguments of one forward call.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from shared.models.diffcam import DiffCam
from shared.models.encoders import Encoder4Editing, GradualStyleEncoder
from shared.models.maresunet import MAResUNet
from shared.models.sdea_deghosting import Deghosting
from shared.models.stylegan2 import Generator

CallArgs = tuple[tuple[Any, ...], dict[str, Any]]


class BenchEntry(NamedTuple):
    name: str
    builder: Callable[[], nn.Module]
    input_builder: Callable[[torch.device], CallArgs]


def _w_plus(device: torch.device) -> CallArgs:
    w_plus = torch.randn(1, 18, 512, device=device)
    return ([w_plus],), {"input_is_latent": True, "randomize_noise": False}


def _image_256(device: torch.device) -> CallArgs:
    return (torch.rand(1, 3, 256, 256, device=device) * 2 - 1,), {}


def _pair_256(device: torch.device) -> CallArgs:
    return (torch.rand(1, 6, 256, 256, device=device) * 2 - 1,), {}


def _image(size: int) -> Callable[[torch.device], CallArgs]:
    def build(device: torch.device) -> CallArgs:
        return (torch.rand(1, 3, size, size, device=device) * 2 - 1,), {}

    return build


ENTRIES: list[BenchEntry] = [
    BenchEntry("StyleGAN2 generator 1024 (W+ -> image)", lambda: Generator(1024), _w_plus),
    BenchEntry("pSp GradualStyleEncoder IR-SE50 @256", GradualStyleEncoder, _image_256),
    BenchEntry("e4e Encoder4Editing IR-SE50 @256", Encoder4Editing, _image_256),
    BenchEntry("Diff-CAM ResNet-101, 17 classes @256 (logits)", DiffCam, _pair_256),
    BenchEntry("MAResU-Net (paper suppressor) @1024", MAResUNet, _image(1024)),
    BenchEntry("SDEA deghosting 128 -> 1024 (baseline suppressor)", Deghosting, _image(128)),
]


def count_parameters(entry: BenchEntry) -> int:
    with torch.device("meta"):
        model = entry.builder()
    return sum(p.numel() for p in model.parameters())


def count_flops(entry: BenchEntry) -> int:
    """Forward FLOPs of one call, counted on the meta device."""
    meta = torch.device("meta")
    with meta:
        model = entry.builder().eval()
    args, kwargs = entry.input_builder(meta)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*args, **kwargs)
    return counter.get_total_flops()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_latency(
    entry: BenchEntry, device: torch.device, dtype: torch.dtype = torch.float32, runs: int = 3
) -> float:
    """Median seconds per forward (after one warm-up call)."""
    torch.manual_seed(0)
    model = entry.builder().eval().to(device=device, dtype=dtype)
    args, kwargs = entry.input_builder(device)
    args = tuple(_cast(a, dtype) for a in args)
    times = []
    with torch.no_grad():
        for i in range(runs + 1):
            _synchronize(device)
            start = time.perf_counter()
            model(*args, **kwargs)
            _synchronize(device)
            if i > 0:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def _cast(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(dtype)
    if isinstance(value, list):
        return [_cast(v, dtype) for v in value]
    return value


def bench_rows(
    entries: Sequence[BenchEntry] = ENTRIES, runs: int = 3, cpu: bool = True
) -> list[dict[str, Any]]:
    """One row per (entry, device, dtype): CPU fp32, and CUDA fp32 + bf16 when available."""
    targets: list[tuple[torch.device, torch.dtype]] = []
    if cpu:
        targets.append((torch.device("cpu"), torch.float32))
    if torch.cuda.is_available():
        targets += [(torch.device("cuda"), torch.float32), (torch.device("cuda"), torch.bfloat16)]
    rows = []
    for entry in entries:
        params, flops = count_parameters(entry), count_flops(entry)
        for device, dtype in targets:
            seconds = median_latency(entry, device, dtype, runs)
            rows.append(
                {
                    "model": entry.name,
                    "device": torch.cuda.get_device_name(device)
                    if device.type == "cuda"
                    else "cpu",
                    "dtype": str(dtype).removeprefix("torch."),
                    "params": params,
                    "gflops": flops / 1e9,
                    "latency_ms": seconds * 1e3,
                }
            )
        if not targets:
            rows.append(
                {
                    "model": entry.name,
                    "device": "-",
                    "dtype": "-",
                    "params": params,
                    "gflops": flops / 1e9,
                    "latency_ms": float("nan"),
                }
            )
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| model | device | dtype | parameters | GFLOPs | latency (ms, median) |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['device']} | {r['dtype']} | {r['params']:,} | "
            f"{r['gflops']:.1f} | {r['latency_ms']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed forwards per row")
    parser.add_argument("--only", default=None, help="benchmark entries whose name contains this")
    parser.add_argument("--no-cpu", action="store_true", help="skip CPU latency rows")
    args = parser.parse_args(argv)
    entries = [e for e in ENTRIES if args.only is None or args.only.lower() in e.name.lower()]
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} CPU threads, batch 1, random weights\n")
    print(format_table(bench_rows(entries, runs=args.runs, cpu=not args.no_cpu)))


if __name__ == "__main__":
    main()
