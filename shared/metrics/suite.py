"""All metrics over a stream of (output, reference) batches, summarised in one report.

The learned metrics are loaded once, when the suite is built; a metric whose weights file is
missing is reported under ``missing`` (naming the file and where it is published) and the
others are still computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from shared.metrics.fid import FIDAccumulator
from shared.metrics.fid_inception import load_fid_inception
from shared.metrics.lpips import LPIPS, load_lpips
from shared.metrics.pixelwise import check_image_pair, mae, psnr
from shared.metrics.ssim import ssim
from shared.metrics.weights import MetricUnavailable

METRIC_NAMES = ("psnr", "ssim", "mae", "lpips", "fid")
PER_IMAGE_METRICS = ("psnr", "ssim", "mae", "lpips")


class MetricSuite:
    """Accumulates per-image PSNR/SSIM/MAE/LPIPS and FID features over batches.

    Images are (B, 3, H, W) in [0, 1]. ``report()`` gives, per requested metric, the mean
    over all images seen (FID: the distance between the two sets; PSNR of identical images
    is ``inf``), ``None`` for a metric that could not be computed, and the reasons under
    ``missing`` (a weights file is missing) or ``skipped`` (e.g. too few images for FID).
    """

    def __init__(
        self, search_dirs: Sequence[Path] = (), metrics: Sequence[str] = METRIC_NAMES
    ) -> None:
        unknown = sorted(set(metrics) - set(METRIC_NAMES))
        if unknown or not metrics:
            raise ValueError(
                f"metrics: expected a non-empty subset of {METRIC_NAMES}, got {metrics}"
            )
        self.metrics = tuple(m for m in METRIC_NAMES if m in metrics)
        self.missing: dict[str, str] = {}
        self._lpips: LPIPS | None = None
        self._fid: FIDAccumulator | None = None
        if "lpips" in self.metrics:
            try:
                self._lpips = load_lpips(search_dirs)
            except MetricUnavailable as error:
                self.missing["lpips"] = str(error)
        if "fid" in self.metrics:
            try:
                self._fid = FIDAccumulator(load_fid_inception(search_dirs))
            except MetricUnavailable as error:
                self.missing["fid"] = str(error)
        self._values: dict[str, list[Tensor]] = {m: [] for m in PER_IMAGE_METRICS}
        self.count = 0

    @torch.no_grad()
    def update(self, outputs: Tensor, references: Tensor) -> dict[str, Tensor]:
        """Add a batch; returns this batch's per-image values (CPU float64, shape (B,))."""
        check_image_pair(outputs, references)
        if outputs.shape[1] != 3:
            raise ValueError(
                f"outputs: expected RGB images (B, 3, H, W), got {tuple(outputs.shape)}"
            )
        batch: dict[str, Tensor] = {}
        if "psnr" in self.metrics:
            batch["psnr"] = psnr(outputs, references)
        if "ssim" in self.metrics:
            batch["ssim"] = ssim(outputs, references)
        if "mae" in self.metrics:
            batch["mae"] = mae(outputs, references)
        if self._lpips is not None:
            batch["lpips"] = self._lpips_distance(outputs, references)
        if self._fid is not None:
            self._fid.update(outputs, references)
        batch = {name: values.detach().double().cpu() for name, values in batch.items()}
        for name, values in batch.items():
            self._values[name].append(values)
        self.count += outputs.shape[0]
        return batch

    def _lpips_distance(self, outputs: Tensor, references: Tensor) -> Tensor:
        assert self._lpips is not None
        parameter = next(self._lpips.parameters())
        if parameter.device != outputs.device:
            self._lpips.to(outputs.device)
        x = outputs.to(parameter.dtype) * 2 - 1
        y = references.to(parameter.dtype) * 2 - 1
        return self._lpips(x, y)

    def report(self) -> dict[str, Any]:
        report: dict[str, Any] = {"count": self.count}
        skipped: dict[str, str] = {}
        for name in self.metrics:
            report[name] = None
            if name in self.missing:
                continue
            if name == "fid":
                assert self._fid is not None
                try:
                    report[name] = self._fid.compute()
                except ValueError as error:
                    skipped[name] = str(error)
            elif self._values[name]:
                report[name] = float(torch.cat(self._values[name]).mean())
            else:
                skipped[name] = "no images were added"
        report["missing"] = dict(self.missing)
        if skipped:
            report["skipped"] = skipped
        return report

    def reset(self) -> None:
        for values in self._values.values():
            values.clear()
        if self._fid is not None:
            self._fid.reset()
        self.count = 0


def compute_metrics(
    outputs: Tensor,
    references: Tensor,
    metrics: Sequence[str] = METRIC_NAMES,
    search_dirs: Sequence[Path] = (),
) -> dict[str, Any]:
    """One-shot report for a single batch of outputs against their references."""
    suite = MetricSuite(search_dirs, metrics)
    suite.update(outputs, references)
    return suite.report()
