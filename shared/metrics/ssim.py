"""SSIM (Wang et al. 2004) between batches of images in [0, 1], one value per image.

Gaussian window σ = 1.5 sampled on 11×11 taps (radius ``int(3.5·σ + 0.5) = 5``, as
scikit-image derives it), K1 = 0.01, K2 = 0.03, population (co)variances; for colour images
the mean over channels of each channel's mean SSIM.

Boundary handling: scikit-image filters the full image with reflected borders and then
crops the 5-pixel border from the SSIM map before averaging. Every pixel left after that
crop only ever sees real pixels, so a *valid* (unpadded) convolution yields exactly the
same map, and no padding mode is needed.

Computed in float64 whatever the input dtype (see ``METRIC_DTYPE`` in pixelwise).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from shared.metrics.pixelwise import METRIC_DTYPE, check_image_pair

SIGMA = 1.5
WINDOW_SIZE = 11
K1 = 0.01
K2 = 0.03


def gaussian_taps(size: int, sigma: float) -> list[float]:
    """The normalised 1-D Gaussian weights of an odd-sized window, centred."""
    centre = (size - 1) / 2
    weights = [math.exp(-0.5 * ((i - centre) / sigma) ** 2) for i in range(size)]
    total = sum(weights)
    return [w / total for w in weights]


def _valid_filter(maps: Tensor, taps: list[float], dim: int) -> Tensor:
    """Correlate along ``dim`` without padding, as a weighted sum of shifted views.

    (Faster than a depthwise ``conv2d`` here: float64 convolutions get no optimised CPU
    kernel, while these are ``size`` vectorised multiply-adds.)
    """
    length = maps.shape[dim] - len(taps) + 1
    out = maps.narrow(dim, 0, length) * taps[0]
    for offset, weight in enumerate(taps[1:], start=1):
        out.add_(maps.narrow(dim, offset, length), alpha=weight)
    return out


def ssim(outputs: Tensor, references: Tensor, data_range: float = 1.0) -> Tensor:
    """Mean structural similarity per image, shape (B,); images need H, W ≥ 11."""
    check_image_pair(outputs, references, min_size=WINDOW_SIZE)
    x = outputs.to(METRIC_DTYPE)
    y = references.to(METRIC_DTYPE)
    channels = x.shape[1]
    taps = gaussian_taps(WINDOW_SIZE, SIGMA)

    maps = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    moments = _valid_filter(_valid_filter(maps, taps, dim=2), taps, dim=3)
    mu_x, mu_y, mu_xx, mu_yy, mu_xy = moments.split(channels, dim=1)
    var_x = mu_xx - mu_x * mu_x
    var_y = mu_yy - mu_y * mu_y
    cov_xy = mu_xy - mu_x * mu_y

    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    )
    return ssim_map.mean(dim=(2, 3)).mean(dim=1)
