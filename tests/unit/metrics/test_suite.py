import math
from pathlib import Path

import pytest
import torch

from shared.metrics import MetricSuite, compute_metrics, mae, psnr, ssim


def image_pairs(count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    references = torch.rand(count, 3, 48, 48, generator=generator)
    noise = 0.1 * torch.randn(references.shape, generator=generator)
    return (references + noise).clamp(0, 1), references


def test_missing_weights_are_reported_and_pixel_metrics_still_computed(tmp_path: Path) -> None:
    outputs, references = image_pairs(2)
    report = compute_metrics(outputs, references, search_dirs=[tmp_path])

    assert report["count"] == 2
    assert report["psnr"] == pytest.approx(psnr(outputs, references).mean().item())
    assert report["ssim"] == pytest.approx(ssim(outputs, references).mean().item())
    assert report["mae"] == pytest.approx(mae(outputs, references).mean().item())
    assert report["lpips"] is None and report["fid"] is None
    assert set(report["missing"]) == {"lpips", "fid"}
    assert "alexnet-owt-7be5be79.pth" in report["missing"]["lpips"]
    assert "alex.pth" in report["missing"]["lpips"]
    assert "pt_inception-2015-12-05-6726825d.pth" in report["missing"]["fid"]


def test_all_metrics_with_weights_present(metric_weights_dir: Path) -> None:
    suite = MetricSuite([metric_weights_dir], metrics=("psnr", "ssim", "mae", "lpips"))
    first = image_pairs(2, seed=1)
    second = image_pairs(1, seed=2)
    per_image = suite.update(*first)
    assert set(per_image) == {"psnr", "ssim", "mae", "lpips"}
    assert all(values.shape == (2,) for values in per_image.values())
    suite.update(*second)

    report = suite.report()
    assert report["missing"] == {} and "fid" not in report
    assert report["count"] == 3
    everything = (torch.cat([first[0], second[0]]), torch.cat([first[1], second[1]]))
    assert report["psnr"] == pytest.approx(psnr(*everything).mean().item())
    assert report["lpips"] > 0

    suite.reset()
    suite.update(first[1], first[1])
    identical = suite.report()
    assert identical["lpips"] == 0 and identical["mae"] == 0 and math.isinf(identical["psnr"])


def test_fid_needs_two_images_per_set(metric_weights_dir: Path) -> None:
    report = compute_metrics(
        *image_pairs(1), metrics=("mae", "fid"), search_dirs=[metric_weights_dir]
    )
    assert report["fid"] is None
    assert "at least 2" in report["skipped"]["fid"]
    assert report["mae"] > 0 and report["missing"] == {}


def test_unknown_metric_and_bad_images_raise_value_error() -> None:
    with pytest.raises(ValueError, match="metrics"):
        MetricSuite(metrics=("psnr", "niqe"))
    suite = MetricSuite(metrics=("psnr",))
    with pytest.raises(ValueError, match="RGB"):
        suite.update(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="differ in shape"):
        suite.update(torch.rand(1, 3, 16, 16), torch.rand(2, 3, 16, 16))
