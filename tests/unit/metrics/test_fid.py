import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import linalg

from shared.metrics import (
    FIDAccumulator,
    FIDInceptionV3,
    MetricUnavailable,
    feature_statistics,
    frechet_distance,
    load_fid_inception,
)
from tests.unit.metrics.conftest import random_state
from tests.unit.metrics.official_layouts import fid_inception_file

# torchvision's inception_v3() has 27,161,264 parameters; without the auxiliary classifier
# (3,326,696) and with the 1008-way fc of the TensorFlow graph (+8·2049) it is this:
FID_INCEPTION_PARAMETERS = 27_161_264 - 3_326_696 + 8 * 2049


def reference_frechet(mu1, sigma1, mu2, sigma2) -> float:
    """Tr((Σ1Σ2)^½) via the symmetric form Tr((Σ1^½ Σ2 Σ1^½)^½), with eigendecompositions."""
    w, v = linalg.eigh(sigma1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root1 @ sigma2 @ root1
    trace_sqrt = np.sqrt(np.clip(linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


@pytest.mark.parametrize(("dim", "samples"), [(8, 500), (32, 200), (64, 20)])
def test_frechet_distance_matches_reference(dim: int, samples: int) -> None:
    """(64, 20): fewer samples than dimensions, so both covariances are near-singular."""
    rng = np.random.default_rng(dim)
    a = rng.normal(size=(samples, dim))
    b = rng.normal(0.2, 1.3, size=(samples, dim)) @ rng.normal(size=(dim, dim)) / np.sqrt(dim)
    mu1, sigma1 = feature_statistics(a)
    mu2, sigma2 = feature_statistics(b)
    expected = reference_frechet(mu1, sigma1, mu2, sigma2)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(mu1, sigma1, mu1, sigma1) == pytest.approx(0, abs=1e-4)


def test_singular_product_falls_back_to_the_eps_offset(caplog: pytest.LogCaptureFixture) -> None:
    # Σ1·Σ2 has no finite square root from scipy (found by search over small integer
    # covariances); pytorch-fid then retries with 1e-6 added to both diagonals.
    sigma1 = np.array([[2, 0, 3, 4], [0, 0, 0, 0], [3, 0, 5, 6], [4, 0, 6, 8]], dtype=float)
    sigma2 = np.array([[0, 0, 0, 0], [0, 1, 2, 1], [0, 2, 4, 2], [0, 1, 2, 1]], dtype=float)
    assert not np.isfinite(linalg.sqrtm(sigma1 @ sigma2)).all()
    mu1, mu2 = np.zeros(4), np.full(4, 0.5)
    offset = np.eye(4) * 1e-6
    expected = reference_frechet(mu1, sigma1 + offset, mu2, sigma2 + offset) - 2 * 4 * 1e-6
    with caplog.at_level(logging.WARNING, logger="shared.metrics.fid"):
        value = frechet_distance(mu1, sigma1, mu2, sigma2)
    assert value == pytest.approx(expected, abs=1e-5)
    assert "singular" in caplog.text


def test_frechet_distance_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="mu1 and mu2"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="sigma1 and sigma2"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))


def test_network_has_the_official_layout() -> None:
    with torch.device("meta"):
        model = FIDInceptionV3()
    layout = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert layout == fid_inception_file()
    assert sum(p.numel() for p in model.parameters()) == FID_INCEPTION_PARAMETERS


@pytest.mark.parametrize("with_num_batches_tracked", [True, False])
def test_checkpoint_loads_strictly(tmp_path: Path, with_num_batches_tracked: bool) -> None:
    """A torchvision-era file may or may not carry BatchNorm's num_batches_tracked."""
    state = random_state(fid_inception_file(with_num_batches_tracked), seed=3)
    torch.save(state, tmp_path / "pt_inception-2015-12-05-6726825d.pth")
    model = load_fid_inception([tmp_path])
    loaded = model.state_dict()
    assert torch.equal(
        loaded["Mixed_7c.branch_pool.conv.weight"], state["Mixed_7c.branch_pool.conv.weight"]
    )
    assert torch.equal(
        loaded["Mixed_6e.branch7x7dbl_5.bn.running_var"],
        state["Mixed_6e.branch7x7dbl_5.bn.running_var"],
    )

    del state["Mixed_5b.branch5x5_2.conv.weight"]
    torch.save(state, tmp_path / "pt_inception-2015-12-05-6726825d.pth")
    with pytest.raises(RuntimeError, match="Mixed_5b.branch5x5_2.conv.weight"):
        load_fid_inception([tmp_path])


def test_missing_weights_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(MetricUnavailable) as caught:
        load_fid_inception([tmp_path])
    assert "pt_inception-2015-12-05-6726825d.pth" in str(caught.value)
    assert "mseitzer/pytorch-fid/releases" in str(caught.value)


@pytest.fixture(scope="module")
def fid_network(metric_weights_dir: Path) -> FIDInceptionV3:
    return load_fid_inception([metric_weights_dir])


def test_fid_pipeline_end_to_end(fid_network: FIDInceptionV3) -> None:
    """Weights file → network → features → statistics → distance.

    The distance is taken on pytorch-fid's 192-d block (``--dims 192``): at 2048-d one scipy
    sqrtm alone takes 15–60 s on 2 CPU cores; the 2048-d features are checked separately.
    """
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(3, 3, 64, 64, generator=generator)

    pool3 = FIDAccumulator(fid_network).features(images[:2])
    assert pool3.shape == (2, 2048) and pool3.dtype == np.float64
    # the random network is not degenerate: the features vary from image to image
    assert np.isfinite(pool3).all() and np.abs(pool3[0] - pool3[1]).max() > 1e-3

    accumulator = FIDAccumulator(fid_network, dims=192)
    accumulator.update(images[:1], images[:1])
    accumulator.update(images[1:], images[1:])  # batches accumulate
    assert accumulator.counts == (3, 3)
    features = accumulator.output_features()
    assert features.shape == (3, 192)
    np.testing.assert_array_equal(accumulator.reference_features(), features)
    assert accumulator.compute() == pytest.approx(0, abs=1e-3)

    others = accumulator.features((images * 0.3 + 0.6).flip(-1))
    assert frechet_distance(*feature_statistics(features), *feature_statistics(others)) > 1.0

    accumulator.reset()
    accumulator.update(images[:1], images[1:])
    with pytest.raises(ValueError, match="at least 2"):
        accumulator.compute()


def test_inputs_are_resized_to_299_bilinear(fid_network: FIDInceptionV3) -> None:
    """An image and its exact 299² bilinear resize give the same features."""
    image = torch.rand(1, 3, 128, 128)
    resized = torch.nn.functional.interpolate(
        image, size=(299, 299), mode="bilinear", align_corners=False
    )
    with torch.no_grad():
        assert torch.allclose(fid_network(image), fid_network(resized), atol=1e-6)
