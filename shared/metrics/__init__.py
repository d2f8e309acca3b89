"""Image-quality metrics: PSNR, SSIM, MAE (pixel), LPIPS and FID (learned, weights-file based).

Every function takes (B, C, H, W) tensors in [0, 1] and returns one value per image, except
FID, which compares two sets. No weights are downloaded: the learned metrics look for the
published files in the directories passed in and in torch hub's cache.
"""

from shared.metrics.fid import FIDAccumulator, feature_statistics, frechet_distance
from shared.metrics.fid_inception import (
    FID_INCEPTION_WEIGHTS,
    FIDInceptionV3,
    load_fid_inception,
)
from shared.metrics.lpips import ALEXNET_WEIGHTS, LPIPS, LPIPS_HEAD_WEIGHTS, load_lpips
from shared.metrics.pixelwise import mae, psnr
from shared.metrics.ssim import ssim
from shared.metrics.suite import METRIC_NAMES, MetricSuite, compute_metrics
from shared.metrics.weights import MetricUnavailable, WeightFile, find_weights

__all__ = [
    "ALEXNET_WEIGHTS",
    "FID_INCEPTION_WEIGHTS",
    "LPIPS",
    "LPIPS_HEAD_WEIGHTS",
    "METRIC_NAMES",
    "FIDAccumulator",
    "FIDInceptionV3",
    "MetricSuite",
    "MetricUnavailable",
    "WeightFile",
    "compute_metrics",
    "feature_statistics",
    "find_weights",
    "frechet_distance",
    "load_fid_inception",
    "load_lpips",
    "mae",
    "psnr",
    "ssim",
]
