import numpy as np
import pytest
from PIL import Image

from shared.core.errors import ImageTooLarge, ImageTooSmall, InvalidImage
from shared.editing.imaging import decode_image, encode_image, to_tensor, to_uint8
from tests.unit.core.image_factory import jpeg_bytes, png_bytes, png_header_only


def test_round_trip_png_is_lossless():
    pixels = np.random.default_rng(1).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    decoded = decode_image(encode_image(pixels, "png"))
    assert decoded.format == "png"
    assert decoded.size == (90, 70)
    np.testing.assert_array_equal(decoded.pixels, pixels)
    assert len(decoded.sha256) == 64


def test_tensor_round_trip():
    pixels = np.random.default_rng(2).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    tensor = to_tensor(pixels)
    assert tensor.shape == (1, 3, 64, 80) and float(tensor.max()) <= 1.0
    np.testing.assert_array_equal(to_uint8(tensor), pixels)


def test_grey_and_rgba_become_rgb():
    import io

    buffer = io.BytesIO()
    Image.new("LA", (80, 80), (120, 200)).save(buffer, format="PNG")
    decoded = decode_image(buffer.getvalue())
    assert decoded.pixels.shape == (80, 80, 3)


def test_exif_orientation_is_applied():
    import io

    image = Image.new("RGB", (120, 80), (10, 20, 30))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    assert decode_image(buffer.getvalue()).size == (80, 120)


@pytest.mark.parametrize(
    "data, error, fragment",
    [
        (b"", InvalidImage, "empty"),
        (b"this is not an image at all" * 10, InvalidImage, "not a recognised image"),
        (jpeg_bytes()[:400], InvalidImage, "corrupt or truncated"),
        (png_bytes(40, 200), ImageTooSmall, "40x200"),
        (png_header_only(9000, 9000), ImageTooLarge, "exceeds the limit"),
        (png_header_only(100000, 100000), ImageTooLarge, "exceeds the limit"),
    ],
    ids=["zero-bytes", "not-an-image", "truncated-jpeg", "too-small", "over-limit", "bomb"],
)
def test_bad_images_get_stable_codes(data, error, fragment):
    with pytest.raises(error) as info:
        decode_image(data, name="upload.bin")
    assert fragment in str(info.value)
    assert info.value.code in {"invalid_image", "image_too_small", "image_too_large"}


def test_pixel_limit_is_configurable():
    with pytest.raises(ImageTooLarge):
        decode_image(png_bytes(200, 200), max_pixels=100 * 100)
    assert decode_image(png_bytes(200, 200), max_pixels=200 * 200).size == (200, 200)


def test_encode_rejects_unknown_format_and_dtype():
    with pytest.raises(ValueError, match="fmt"):
        encode_image(np.zeros((8, 8, 3), np.uint8), "gif")
    with pytest.raises(ValueError, match="uint8"):
        encode_image(np.zeros((8, 8, 3), np.float32), "png")


def test_to_batch_gives_the_values_of_stacking_converted_images():
    """to_batch writes each image once into the batch (issue #16) and must equal, bit for bit,
    what the runner built before: torch.cat of resize(to_tensor(image), size)."""
    import torch

    from shared.editing.imaging import to_batch
    from shared.editing.pipeline import resize

    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
              rng.integers(0, 256, (96, 96, 3), dtype=np.uint8),  # shrunk (area)
              rng.integers(0, 256, (40, 40, 3), dtype=np.uint8),  # enlarged (bicubic)
              np.asfortranarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))]
    expected = torch.cat([resize(to_tensor(image), 64) for image in images])
    batch = to_batch(images, 64)
    assert batch.shape == (4, 3, 64, 64) and batch.dtype == torch.float32
    assert torch.equal(batch, expected)


def test_to_uint8_rounds_and_clamps_as_before():
    import torch

    values = torch.tensor([-0.5, 0.0, 0.001, 0.5 / 255, 1.5 / 255, 0.5, 0.999, 1.0, 2.0])
    image = values.repeat(3, 1)[:, None, :]  # (3, 1, 9)
    reference = image.clone().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0)
    assert np.array_equal(to_uint8(image), reference.numpy())
    assert np.array_equal(to_uint8(image[None]), reference.numpy())
    assert torch.equal(image, values.repeat(3, 1)[:, None, :]), "the input is left alone"
