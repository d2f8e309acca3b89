"""Fréchet Inception Distance as pytorch-fid computes it.

FID between two image sets is the Fréchet distance between Gaussians fitted (mean, sample
covariance) to their Inception pool3 features:
``‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2·(Σ₁Σ₂)^½)``. The matrix square root is scipy's; when it is not
finite (a near-singular product) the covariances get ``eps·I`` added and it is retried, and a
small imaginary part from round-off is dropped, a large one is an error — all as pytorch-fid.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import torch
from scipy import linalg
from torch import Tensor

from shared.metrics.fid_inception import FEATURE_DIM, FEATURE_DIMS, FIDInceptionV3

log = logging.getLogger(__name__)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape:
        raise ValueError(f"mu1 and mu2 differ in shape: {mu1.shape} vs {mu2.shape}")
    if sigma1.shape != sigma2.shape or sigma1.shape != (mu1.shape[0],) * 2:
        raise ValueError(
            f"sigma1 and sigma2 must both be {(mu1.shape[0],) * 2}, got {sigma1.shape} and "
            f"{sigma2.shape}"
        )
    diff = mu1 - mu2
    with warnings.catch_warnings():
        # A singular product is handled below (pytorch-fid silences scipy the same way).
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        log.warning("FID: singular covariance product; adding %s to the diagonals", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(
                f"FID: matrix square root has an imaginary component of "
                f"{np.max(np.abs(covmean.imag))}"
            )
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample covariance (rows are samples) of a (N, D) feature array, N ≥ 2."""
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"features: need (N, D) with N ≥ 2 samples, got {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


class FIDAccumulator:
    """Collects Inception features of outputs and references batch by batch; ``compute()``
    gives the FID between the two sets (each needs at least 2 images).

    ``dims`` is pytorch-fid's ``--dims``: 2048 (pool3) is the standard FID, the smaller
    blocks give cheaper, non-comparable variants.
    """

    def __init__(self, network: FIDInceptionV3, dims: int = FEATURE_DIM) -> None:
        if dims not in FEATURE_DIMS:
            raise ValueError(f"dims: expected one of {FEATURE_DIMS}, got {dims}")
        self.network = network
        self.dims = dims
        self._outputs: list[np.ndarray] = []
        self._references: list[np.ndarray] = []

    @torch.no_grad()
    def features(self, images: Tensor) -> np.ndarray:
        """Features (B, dims) of images in [0, 1], in float64."""
        parameter = next(self.network.parameters())
        if parameter.device != images.device:
            self.network.to(images.device)
        features = self.network(images.to(parameter.dtype), dims=self.dims)
        return features.double().cpu().numpy()

    def add_outputs(self, images: Tensor) -> None:
        self._outputs.append(self.features(images))

    def add_references(self, images: Tensor) -> None:
        self._references.append(self.features(images))

    def update(self, outputs: Tensor, references: Tensor) -> None:
        self.add_outputs(outputs)
        self.add_references(references)

    @property
    def counts(self) -> tuple[int, int]:
        return sum(len(f) for f in self._outputs), sum(len(f) for f in self._references)

    def output_features(self) -> np.ndarray:
        """All output features so far, (N, dims)."""
        return np.concatenate(self._outputs) if self._outputs else np.empty((0, self.dims))

    def reference_features(self) -> np.ndarray:
        return np.concatenate(self._references) if self._references else np.empty((0, self.dims))

    def compute(self) -> float:
        if min(self.counts) < 2:
            raise ValueError(f"FID needs at least 2 outputs and 2 references, got {self.counts}")
        mu1, sigma1 = feature_statistics(self.output_features())
        mu2, sigma2 = feature_statistics(self.reference_features())
        return frechet_distance(mu1, sigma1, mu2, sigma2)

    def reset(self) -> None:
        self._outputs.clear()
        self._references.clear()
