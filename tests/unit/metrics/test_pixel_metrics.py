import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from shared.metrics import mae, psnr, ssim


def load_face(path: Path, size: int = 256) -> np.ndarray:
    image = Image.open(path).convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.float64) / 255.0


def pick_faces(dev_faces: list[Path]) -> list[Path]:
    """Two 1024² JPEGs, a 1024² PNG and a 256² PNG."""

    def size(path: Path) -> int:
        with Image.open(path) as image:
            return image.width

    jpgs = [p for p in dev_faces if p.suffix == ".jpg" and size(p) == 1024][:2]
    large_png = next(p for p in dev_faces if p.suffix == ".png" and size(p) == 1024)
    small_png = next(p for p in dev_faces if p.suffix == ".png" and size(p) == 256)
    return [*jpgs, large_png, small_png]


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(np.round(image * 255).astype(np.uint8)).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float64) / 255.0


def degradations(image: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "noise": np.clip(image + rng.normal(0.0, 0.05, image.shape), 0.0, 1.0),
        "blur": cv2.GaussianBlur(image, (0, 0), 2.0),
        "jpeg": jpeg(image, 25),
        "jpeg_mild": jpeg(image, 90),
    }


def as_float32(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32).astype(np.float64)


def to_batch(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()


def skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(
        a,
        b,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1,
        channel_axis=2,
    )


def test_psnr_and_ssim_match_skimage_on_degraded_faces(dev_faces: list[Path]) -> None:
    rng = np.random.default_rng(0)
    faces = [load_face(p) for p in pick_faces(dev_faces)]
    pairs = [(face, degraded) for face in faces for degraded in degradations(face, rng).values()]
    # skimage gets exactly the values the float32 tensors hold
    references = [as_float32(face) for face, _ in pairs]
    outputs = [as_float32(degraded) for _, degraded in pairs]

    ours_psnr = psnr(to_batch(outputs), to_batch(references))
    ours_ssim = ssim(to_batch(outputs), to_batch(references))

    for i, (out, ref) in enumerate(zip(outputs, references, strict=True)):
        expected_psnr = peak_signal_noise_ratio(ref, out, data_range=1)
        assert ours_psnr[i].item() == pytest.approx(expected_psnr, abs=1e-4)
        assert ours_ssim[i].item() == pytest.approx(skimage_ssim(ref, out), abs=1e-4)
    # the degradations really span a range of quality
    assert float(ours_ssim.min()) < 0.8 < float(ours_ssim.max()) < 1.0


def test_psnr_and_ssim_match_skimage_on_random_images() -> None:
    rng = np.random.default_rng(1)
    a = rng.random((3, 40, 57, 3))
    b = np.clip(a + rng.normal(0, 0.2, a.shape), 0, 1)
    b[1] = rng.random((40, 57, 3))  # unrelated pair: SSIM near 0
    x = torch.from_numpy(b).permute(0, 3, 1, 2)
    y = torch.from_numpy(a).permute(0, 3, 1, 2)
    ours_psnr, ours_ssim = psnr(x, y), ssim(x, y)
    for i in range(3):
        assert ours_psnr[i].item() == pytest.approx(
            peak_signal_noise_ratio(a[i], b[i], data_range=1), abs=1e-4
        )
        assert ours_ssim[i].item() == pytest.approx(skimage_ssim(a[i], b[i]), abs=1e-4)


def test_ssim_grayscale_matches_skimage() -> None:
    rng = np.random.default_rng(2)
    a = rng.random((32, 32))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    ours = ssim(torch.from_numpy(b)[None, None], torch.from_numpy(a)[None, None])
    reference = structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1
    )
    assert ours.item() == pytest.approx(reference, abs=1e-6)


def test_identical_images() -> None:
    x = torch.rand(2, 3, 24, 24)
    assert torch.equal(psnr(x, x), torch.full((2,), float("inf"), dtype=torch.float64))
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64))
    assert torch.equal(mae(x, x), torch.zeros(2, dtype=torch.float64))


def test_mae_by_hand() -> None:
    x = torch.zeros(2, 3, 2, 2)
    y = torch.zeros(2, 3, 2, 2)
    y[0, 0, 0, 0] = 0.6  # one of 12 values off by 0.6 → 0.05
    y[1] = 0.25
    y[1, 2] = 1.0  # 8 values off by 0.25, 4 by 1.0 → (2 + 4) / 12 = 0.5
    assert mae(y, x).tolist() == pytest.approx([0.05, 0.5])
    assert psnr(y, x)[1].item() == pytest.approx(10 * np.log10(12 / (8 * 0.0625 + 4)))


def test_values_are_per_image_and_batch_independent() -> None:
    x = torch.rand(4, 3, 32, 32)
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    for metric in (psnr, ssim, mae):
        batched = metric(x, y)
        assert batched.shape == (4,)
        single = torch.cat([metric(x[i : i + 1], y[i : i + 1]) for i in range(4)])
        assert torch.allclose(batched, single, rtol=0, atol=1e-12)


def test_half_precision_inputs_agree_with_float32() -> None:
    x = torch.rand(2, 3, 32, 32)
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    xh, yh = x.half(), y.half()
    for metric in (psnr, ssim, mae):
        assert torch.allclose(metric(xh, yh), metric(xh.float(), yh.float()), atol=1e-9)


@pytest.mark.parametrize(
    ("outputs", "references", "message"),
    [
        (torch.rand(3, 16, 16), torch.rand(3, 16, 16), "outputs: expected shape"),
        (torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17), "differ in shape"),
        (torch.zeros(1, 3, 16, 16, dtype=torch.uint8), torch.rand(1, 3, 16, 16), "floating"),
        (torch.rand(1, 3, 8, 16), torch.rand(1, 3, 8, 16), "at least 11×11"),
    ],
)
def test_bad_input_raises_value_error(
    outputs: torch.Tensor, references: torch.Tensor, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ssim(outputs, references)
