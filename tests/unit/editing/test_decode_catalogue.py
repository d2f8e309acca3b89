"""The decode catalogue: every Pillow mode and the odd formats, decoded by ``decode_image``
and compared with a reference rendering of the same picture.

Each file is built in memory from a known 8-bit picture (``image_cases``): RGB cases from
the RGB reference, grey ones from its grey version, palette ones from a 256-colour
quantisation of it. The reference rendering is what a viewer shows: that picture,
composited over white where it has transparency, colour-managed to sRGB where it carries
an ICC profile. Lossless cases must match exactly; lossy or colour-managed ones within
the tolerance named in the case (mean and max absolute error, in grey levels). Cases that
have no unambiguous rendering must raise ``InvalidImage`` (``invalid_image``).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image, ImageCms

from shared.core.errors import InvalidImage
from shared.editing import imaging
from shared.editing.imaging import decode_image
from tests.unit.editing import image_cases as ic

EXACT = (0.0, 0)
ROUNDING = (0.5, 1)  # one grey level: premultiplied alpha undone by Pillow, YCbCr rounding
JPEG_QUALITY = 98  # with 4:4:4 chroma: at 95, ringing at the shapes' edges reaches 18
LOSSY = (1.0, 8)  # JPEG at JPEG_QUALITY, lossy WebP of a smooth picture
COLOUR_MANAGED = (0.5, 3)  # LittleCMS vs float math on the same 8-bit data
LUT = (1.0, 8)  # the CMYK profile's 11-point lookup table, interpolated


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[], bytes]
    expected: Callable[[], np.ndarray] | None  # None: must raise InvalidImage
    tolerance: tuple[float, int] = EXACT
    refusal: str = ""  # a fragment of the InvalidImage message


# ------------------------------------------------------------------------------ pictures

REF = ic.reference_rgb
GREY = ic.reference_grey
ALPHA = ic.reference_alpha


def save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def tiff(array: np.ndarray, **options: object) -> bytes:
    """A TIFF written by tifffile (scikit-image's dependency), which writes the kinds
    Pillow cannot: 16-bit RGB, unsigned 32-bit, float RGB, min-is-white, ..."""
    tifffile = pytest.importorskip("tifffile")
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **options)
    return buffer.getvalue()


def rgb() -> Image.Image:
    return Image.fromarray(REF())


def grey() -> Image.Image:
    return Image.fromarray(GREY())


def rgba() -> Image.Image:
    return Image.fromarray(np.dstack([REF(), ALPHA()]))


def la() -> Image.Image:
    return Image.fromarray(np.dstack([GREY(), ALPHA()])).convert("LA")


def grey16(mode: str = "I;16") -> Image.Image:
    dtype = ">u2" if mode == "I;16B" else "<u2"
    return Image.frombytes(mode, GREY().shape[::-1], (GREY().astype(dtype) * 257).tobytes())


def grey_image(mode: str, values: np.ndarray) -> Image.Image:
    dtype = {"I": "<i4", "F": "<f4"}[mode]
    return Image.frombytes(mode, values.shape[::-1], values.astype(dtype).tobytes())


@functools.cache
def palette() -> Image.Image:
    return rgb().quantize(256, dither=Image.Dither.NONE)


def palette_rgb() -> np.ndarray:
    colours = np.array(palette().getpalette()[:768], np.uint8).reshape(-1, 3)
    return colours[np.asarray(palette())]


def palette_alphas() -> bytes:
    """tRNS alphas for the palette: 0, 255 and partial values."""
    return bytes((i * 67) % 256 if i % 5 else (0 if i % 2 else 255) for i in range(256))


def palette_alpha() -> np.ndarray:
    return np.frombuffer(palette_alphas(), np.uint8)[np.asarray(palette())]


def red_index() -> int:
    return int(np.asarray(palette())[10, 10])  # inside the red square


def bilevel() -> np.ndarray:
    return GREY() > 127


def orient_stored(orientation: int) -> Image.Image:
    """The reference as stored under ``orientation``: what a viewer turns back into REF."""
    undo = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_90,  # shown rotated 90° clockwise: stored 90° anticlockwise
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_270,
    }
    return rgb().transpose(undo[orientation]) if orientation in undo else rgb()


def with_orientation(image: Image.Image, fmt: str, orientation: int, **options: object) -> bytes:
    exif = image.getexif()
    exif[0x0112] = orientation
    return save(image, fmt, exif=exif, **options)


def adobe_stored() -> np.ndarray:
    return ic.srgb_to_adobe_rgb(REF())


def grey_gamma_stored() -> np.ndarray:
    linear = ic.srgb_to_linear(GREY().astype(np.float64) / 255)
    return np.rint(linear ** (1 / ic.GREY_GAMMA) * 255).astype(np.uint8)


def grey_gamma_rendered() -> np.ndarray:
    linear = (grey_gamma_stored().astype(np.float64) / 255) ** ic.GREY_GAMMA
    return np.rint(ic.linear_to_srgb(linear) * 255).astype(np.uint8)


def cmyk_rendered(cmyk: np.ndarray) -> np.ndarray:
    return np.rint(ic.cmyk_press_rgb(cmyk.astype(np.float64) / 255) * 255).astype(np.uint8)


def cmyk_with_black() -> np.ndarray:
    """The reference as CMYK with grey component replacement (K = the darkest ink)."""
    cmy = 255 - REF().astype(np.float64)
    k = cmy.min(axis=2, keepdims=True)
    scaled = np.where(k < 255, (cmy - k) * 255 / np.maximum(255 - k, 1), 0)
    return np.rint(np.concatenate([scaled, k], axis=2)).astype(np.uint8)


def cmyk_naive_rendered(cmyk: np.ndarray) -> np.ndarray:
    """What browsers show for CMYK without a profile: (255 − C)(255 − K)/255, rounded."""
    c = cmyk.astype(np.float64)
    return np.rint((255 - c[:, :, :3]) * (255 - c[:, :, 3:]) / 255).astype(np.uint8)


def cmyk_image(cmyk: np.ndarray) -> Image.Image:
    return Image.frombytes("CMYK", cmyk.shape[1::-1], cmyk.tobytes())


def lab_image() -> Image.Image:
    srgb, lab = ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB")
    return ImageCms.profileToProfile(rgb(), srgb, lab, outputMode="LAB")


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def premultiply(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float64) / 255
    return np.rint(colour * (a[:, :, None] if colour.ndim == 3 else a)).astype(np.uint8)


def frames(fmt: str, **options: object) -> bytes:
    first, second = rgb(), Image.fromarray(255 - REF())
    if fmt == "GIF":
        first, second = palette(), Image.fromarray(255 - palette_rgb()).quantize(256)
    return save(first, fmt, save_all=True, append_images=[second], duration=100, **options)


def pgm(maxval: int, values: np.ndarray) -> bytes:
    header = f"P5\n{values.shape[1]} {values.shape[0]}\n{maxval}\n".encode()
    return header + values.astype(">u2" if maxval > 255 else np.uint8).tobytes()


def stored_pixels(data: bytes) -> np.ndarray:
    """The samples a file stores, decoded by Pillow without any colour management: the
    reference rendering of a lossy colour-managed file starts from these."""
    return np.asarray(Image.open(io.BytesIO(data)))


@functools.cache
def jpeg_adobe_rgb() -> bytes:
    return save(Image.fromarray(adobe_stored()), "JPEG", quality=JPEG_QUALITY, subsampling=0,
                icc_profile=ic.adobe_rgb_profile())  # fmt: skip


@functools.cache
def jpeg_cmyk_press() -> bytes:
    return save(cmyk_image(ic.cmyk_for_press(REF())), "JPEG", quality=JPEG_QUALITY,
                icc_profile=ic.cmyk_profile())  # fmt: skip


# ------------------------------------------------------------------------------ cases


def grey_rgb() -> np.ndarray:
    return ic.as_rgb(GREY())


CASES = [
    # PNG
    Case("png-rgb", lambda: save(rgb(), "PNG"), REF),
    Case("png-rgba", lambda: save(rgba(), "PNG"), lambda: ic.over_white(REF(), ALPHA())),
    Case("png-l", lambda: save(grey(), "PNG"), grey_rgb),
    Case("png-la", lambda: save(la(), "PNG"), lambda: ic.as_rgb(ic.over_white(GREY(), ALPHA()))),
    Case(
        "png-1bit",
        lambda: save(Image.fromarray(bilevel()), "PNG"),
        lambda: ic.as_rgb(bilevel().astype(np.uint8) * 255),
    ),
    Case("png-palette", lambda: save(palette(), "PNG"), palette_rgb),
    Case(
        "png-palette-trns-alphas",
        lambda: save(palette(), "PNG", transparency=palette_alphas()),
        lambda: ic.over_white(palette_rgb(), palette_alpha()),
    ),
    Case(
        "png-rgb-trns-key",
        lambda: save(rgb(), "PNG", transparency=(255, 0, 0)),
        lambda: np.where(np.all(REF() == (255, 0, 0), axis=2)[:, :, None], 255, REF()),
    ),
    Case(
        "png-l-trns-key",
        lambda: save(grey(), "PNG", transparency=0),
        lambda: ic.as_rgb(np.where(GREY() == 0, 255, GREY())),
    ),
    Case(
        "png-2bit-grey-trns-key",  # the tRNS key is a raw 2-bit sample, pixels are scaled
        lambda: ic.png_file(GREY() >> 6, bit_depth=2, colour_type=0, chunks=(ic.trns_chunk(1),)),
        lambda: ic.as_rgb(np.where(GREY() >> 6 == 1, 255, (GREY() >> 6) * 85)),
    ),
    Case("png-16bit-grey", lambda: save(grey16(), "PNG"), grey_rgb),
    Case(
        "png-16bit-grey-trns-key",
        lambda: save(grey16(), "PNG", transparency=0),
        lambda: ic.as_rgb(np.where(GREY() == 0, 255, GREY())),
    ),
    Case(
        "png-16bit-rgb",
        lambda: ic.png_file(REF().astype(np.uint16) * 257, bit_depth=16, colour_type=2),
        REF,
    ),
    Case(
        "png-16bit-rgba",
        lambda: ic.png_file(
            np.dstack([REF(), ALPHA()]).astype(np.uint16) * 257, bit_depth=16, colour_type=6
        ),
        lambda: ic.over_white(REF(), ALPHA()),
    ),
    Case(
        "png-16bit-la",
        lambda: ic.png_file(
            np.dstack([GREY(), ALPHA()]).astype(np.uint16) * 257, bit_depth=16, colour_type=4
        ),
        lambda: ic.as_rgb(ic.over_white(GREY(), ALPHA())),
    ),
    Case(
        "png-16bit-rgb-trns-key",
        lambda: ic.png_file(
            REF().astype(np.uint16) * 257,
            bit_depth=16,
            colour_type=2,
            chunks=(ic.trns_chunk(65535, 0, 0),),
        ),
        None,
        refusal="16-bit RGB PNG with a tRNS",
    ),
    Case("apng-first-frame", lambda: frames("PNG"), REF),
    Case("png-exif-orientation-6", lambda: with_orientation(orient_stored(6), "PNG", 6), REF),
    # ICC profiles
    Case(
        "png-adobe-rgb-icc",
        lambda: save(Image.fromarray(adobe_stored()), "PNG", icc_profile=ic.adobe_rgb_profile()),
        lambda: ic.adobe_rgb_to_srgb(adobe_stored()),
        COLOUR_MANAGED,
    ),
    Case(
        "png-rgba-adobe-rgb-icc",
        lambda: save(
            Image.fromarray(np.dstack([adobe_stored(), ALPHA()])),
            "PNG",
            icc_profile=ic.adobe_rgb_profile(),
        ),
        lambda: ic.over_white(ic.adobe_rgb_to_srgb(adobe_stored()), ALPHA()),
        COLOUR_MANAGED,
    ),
    Case(
        "jpeg-adobe-rgb-icc",
        jpeg_adobe_rgb,
        lambda: ic.adobe_rgb_to_srgb(stored_pixels(jpeg_adobe_rgb())),
        COLOUR_MANAGED,
    ),
    Case(
        "png-grey-gamma-1.8-icc",
        lambda: save(
            Image.fromarray(grey_gamma_stored()), "PNG", icc_profile=ic.grey_gamma_profile()
        ),
        lambda: ic.as_rgb(grey_gamma_rendered()),
        COLOUR_MANAGED,
    ),
    Case("png-srgb-icc", lambda: save(rgb(), "PNG", icc_profile=srgb_profile()), REF),
    Case(
        "png-rgb-with-grey-icc-ignored",
        lambda: save(rgb(), "PNG", icc_profile=ic.grey_gamma_profile()),
        REF,
    ),
    Case(
        "png-unreadable-icc-ignored",
        lambda: save(rgb(), "PNG", icc_profile=b"not an ICC profile" * 10),
        REF,
    ),
    Case(
        "jpeg-cmyk-icc",
        jpeg_cmyk_press,
        lambda: cmyk_rendered(stored_pixels(jpeg_cmyk_press())),
        LUT,
    ),
    Case(
        "tiff-cmyk-icc",
        lambda: save(cmyk_image(ic.cmyk_for_press(REF())), "TIFF", icc_profile=ic.cmyk_profile()),
        lambda: cmyk_rendered(ic.cmyk_for_press(REF())),
        LUT,
    ),
    # JPEG
    Case("jpeg-rgb", lambda: save(rgb(), "JPEG", quality=JPEG_QUALITY, subsampling=0), REF, LOSSY),
    Case("jpeg-l", lambda: save(grey(), "JPEG", quality=JPEG_QUALITY), grey_rgb, LOSSY),
    Case(
        "jpeg-cmyk-adobe-inverted",
        lambda: save(cmyk_image(cmyk_with_black()), "JPEG", quality=JPEG_QUALITY),
        lambda: cmyk_naive_rendered(cmyk_with_black()),
        LOSSY,
    ),
    Case(
        "jpeg-cmyk-no-adobe-marker",  # browsers read every CMYK JPEG as Adobe-inverted
        lambda: ic.strip_adobe_marker(
            save(cmyk_image(cmyk_with_black()), "JPEG", quality=JPEG_QUALITY)
        ),
        lambda: cmyk_naive_rendered(cmyk_with_black()),
        LOSSY,
    ),
    *(
        Case(
            f"jpeg-exif-orientation-{o}",
            functools.partial(
                lambda o: with_orientation(
                    orient_stored(o), "JPEG", o, quality=JPEG_QUALITY, subsampling=0
                ),
                o,
            ),
            REF,
            LOSSY,
        )
        for o in range(1, 9)
    ),
    # TIFF
    Case("tiff-rgb", lambda: save(rgb(), "TIFF"), REF),
    Case("tiff-rgb-deflate", lambda: save(rgb(), "TIFF", compression="tiff_adobe_deflate"), REF),
    Case("tiff-rgba", lambda: save(rgba(), "TIFF"), lambda: ic.over_white(REF(), ALPHA())),
    Case(
        "tiff-rgba-premultiplied",  # opened as RGBA, un-premultiplied by Pillow
        lambda: tiff(
            np.dstack([premultiply(REF(), ALPHA()), ALPHA()]), photometric="rgb", extrasamples=[1]
        ),
        lambda: ic.over_white(REF(), ALPHA()),
        ROUNDING,
    ),
    Case(
        "tiff-la-premultiplied",  # opened as La
        lambda: tiff(
            np.dstack([premultiply(GREY(), ALPHA()), ALPHA()]),
            photometric="minisblack",
            extrasamples=[1],
        ),
        lambda: ic.as_rgb(ic.over_white(GREY(), ALPHA())),
    ),
    Case(
        "tiff-pa",
        lambda: save(Image.merge("PA", (palette(), Image.fromarray(ALPHA()))), "TIFF"),
        lambda: ic.over_white(palette_rgb(), ALPHA()),
    ),
    Case(
        "tiff-cmyk",
        lambda: save(cmyk_image(cmyk_with_black()), "TIFF"),
        lambda: cmyk_naive_rendered(cmyk_with_black()),
    ),
    Case(
        "tiff-ycbcr",
        lambda: save(rgb().convert("YCbCr"), "TIFF"),
        lambda: ic.ycbcr_to_rgb(np.asarray(rgb().convert("YCbCr"))),
        ROUNDING,
    ),
    Case(
        "tiff-lab",
        lambda: save(lab_image(), "TIFF"),
        lambda: ic.lab_to_srgb(np.asarray(lab_image())),
        COLOUR_MANAGED,
    ),
    Case("tiff-16bit-grey", lambda: save(grey16(), "TIFF"), grey_rgb),
    Case("tiff-16bit-grey-big-endian", lambda: save(grey16("I;16B"), "TIFF"), grey_rgb),
    Case(
        "tiff-16bit-grey-deflate",  # libtiff's path: native-order I;16
        lambda: tiff(GREY().astype(np.uint16) * 257, photometric="minisblack", compression="zlib"),
        grey_rgb,
    ),
    Case(
        "tiff-16bit-grey-min-is-white",
        lambda: tiff(65535 - GREY().astype(np.uint16) * 257, photometric="miniswhite"),
        grey_rgb,
    ),
    Case(
        "tiff-12bit-grey",
        lambda: ic.tiff_12bit(GREY().astype(np.uint32) * 4095 // 255),
        lambda: ic.as_rgb(
            np.rint((GREY().astype(int) * 4095 // 255) * 255 / 4095).astype(np.uint8)
        ),
    ),
    Case("tiff-16bit-rgb", lambda: tiff(REF().astype(np.uint16) * 257, photometric="rgb"), REF),
    Case(
        "tiff-16bit-rgba",
        lambda: tiff(
            np.dstack([REF(), ALPHA()]).astype(np.uint16) * 257, photometric="rgb", extrasamples=[2]
        ),
        lambda: ic.over_white(REF(), ALPHA()),
    ),
    Case("tiff-32bit-int-8bit-data", lambda: save(grey_image("I", GREY()), "TIFF"), grey_rgb),
    Case(
        "tiff-32bit-int-16bit-data",
        lambda: save(grey_image("I", GREY().astype(np.int32) * 257), "TIFF"),
        grey_rgb,
    ),
    Case(
        "tiff-32bit-unsigned-full-range",
        lambda: tiff(GREY().astype(np.uint32) * 16843009, photometric="minisblack"),
        grey_rgb,
    ),
    Case(
        "tiff-16bit-signed-8bit-data",
        lambda: tiff(GREY().astype(np.int16), photometric="minisblack"),
        grey_rgb,
    ),
    Case(
        "tiff-32bit-int-negative",
        lambda: save(grey_image("I", GREY().astype(np.int32) - 10), "TIFF"),
        None,
        refusal="negative values",
    ),
    Case("tiff-float32-0-1", lambda: save(grey_image("F", GREY() / 255), "TIFF"), grey_rgb),
    Case(
        "tiff-float32-slight-overshoot",
        lambda: save(
            grey_image("F", np.clip(GREY() / 255 * 1.003 - 0.0015, -0.003, 1.003)), "TIFF"
        ),
        grey_rgb,
    ),
    Case(
        "tiff-float32-min-is-white",
        lambda: tiff((1 - GREY() / 255).astype(np.float32), photometric="miniswhite"),
        grey_rgb,
    ),
    Case(
        "tiff-float32-0-255",
        lambda: save(grey_image("F", GREY().astype(np.float32)), "TIFF"),
        None,
        refusal="only [0, 1]",
    ),
    Case(
        "tiff-float32-nan",
        lambda: save(grey_image("F", np.where(GREY() == 0, np.nan, GREY() / 255)), "TIFF"),
        None,
        refusal="NaN",
    ),
    Case(
        "tiff-float32-rgb",
        lambda: tiff((REF() / 255).astype(np.float32), photometric="rgb"),
        None,
        refusal="not a recognised image format",
    ),
    Case(
        "tiff-float64-grey",
        lambda: tiff(GREY() / 255, photometric="minisblack"),
        None,
        refusal="not a recognised image format",
    ),
    Case(
        "tiff-orientation-6",  # Pillow applies TIFF orientation while loading
        lambda: with_orientation(orient_stored(6), "TIFF", 6),
        REF,
    ),
    # GIF
    Case("gif-palette", lambda: save(palette(), "GIF"), palette_rgb),
    Case(
        "gif-transparency-index",
        lambda: save(palette(), "GIF", transparency=red_index()),
        lambda: np.where((np.asarray(palette()) == red_index())[:, :, None], 255, palette_rgb()),
    ),
    Case("gif-animated-first-frame", lambda: frames("GIF"), palette_rgb),
    # WebP
    Case("webp-lossless-rgb", lambda: save(rgb(), "WEBP", lossless=True), REF),
    Case(
        "webp-lossless-rgba",
        lambda: save(rgba(), "WEBP", lossless=True, exact=True),
        lambda: ic.over_white(REF(), ALPHA()),
    ),
    Case(
        "webp-lossy-rgb",
        lambda: save(Image.fromarray(smooth()), "WEBP", quality=100),
        lambda: smooth(),
        LOSSY,
    ),
    Case("webp-animated-first-frame", lambda: frames("WEBP", lossless=True), REF),
    # BMP, PNM
    Case("bmp-rgb", lambda: save(rgb(), "BMP"), REF),
    Case("bmp-palette", lambda: save(palette(), "BMP"), palette_rgb),
    Case(
        "bmp-1bit",
        lambda: save(Image.fromarray(bilevel()), "BMP"),
        lambda: ic.as_rgb(bilevel().astype(np.uint8) * 255),
    ),
    Case("ppm-rgb", lambda: save(rgb(), "PPM"), REF),
    Case("pgm-16bit", lambda: save(grey16(), "PPM"), grey_rgb),
    Case(
        "pgm-maxval-1023",
        lambda: pgm(1023, np.rint(GREY() * (1023 / 255))),
        lambda: ic.as_rgb(np.rint(np.rint(GREY() * (1023 / 255)) * (255 / 1023)).astype(np.uint8)),
        ROUNDING,  # Pillow rescales to 16 bits first: rounded twice
    ),
    Case("pfm-float", lambda: save(grey_image("F", GREY() / 255), "PPM"), grey_rgb),
]


@functools.cache
def smooth() -> np.ndarray:
    """The reference's gradients without its sharp shapes (lossy WebP is 4:2:0)."""
    y, x = np.mgrid[0 : ic.HEIGHT, 0 : ic.WIDTH]
    return np.stack(
        [x * 255 // (ic.WIDTH - 1), y * 255 // (ic.HEIGHT - 1), (x + y) * 255 // 166], axis=2
    ).astype(np.uint8)


def assert_close(actual: np.ndarray, expected: np.ndarray, tolerance: tuple[float, int]) -> None:
    assert actual.dtype == np.uint8 and actual.shape == expected.shape, (
        f"{actual.dtype} {actual.shape} != uint8 {expected.shape}"
    )
    error = np.abs(actual.astype(np.int16) - expected.astype(np.int16))
    mean, worst = tolerance
    assert error.mean() <= mean and error.max() <= worst, (
        f"mean error {error.mean():.3f} (≤ {mean}), max {error.max()} (≤ {worst}) at "
        f"{np.unravel_index(error.argmax(), error.shape)}"
    )


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_decode_catalogue(case: Case) -> None:
    data = case.build()
    if case.expected is None:
        with pytest.raises(InvalidImage) as info:
            decode_image(data, name="case")
        assert info.value.code == "invalid_image"
        assert case.refusal in str(info.value)
        return
    decoded = decode_image(data, name="case")
    assert decoded.pixels.flags.writeable and decoded.pixels.flags.c_contiguous
    assert_close(decoded.pixels, np.asarray(case.expected()), case.tolerance)


# ------------------------------------------------------------------------------ every mode


def mode_case(mode: str) -> tuple[Image.Image, np.ndarray, tuple[float, int]]:
    """An in-memory image in ``mode`` and its reference rendering. Used for the modes no
    file format stores (HSV, RGBa, I;16N, ...) and to be sure no mode is left out."""
    size = (ic.WIDTH, ic.HEIGHT)
    grey_out, over = grey_rgb(), ic.over_white
    if mode == "1":
        return Image.fromarray(bilevel()), ic.as_rgb(bilevel().astype(np.uint8) * 255), EXACT
    if mode == "L":
        return grey(), grey_out, EXACT
    if mode == "LA":
        return la(), ic.as_rgb(over(GREY(), ALPHA())), EXACT
    if mode == "La":
        data = np.dstack([premultiply(GREY(), ALPHA()), ALPHA()])
        return Image.frombytes("La", size, data.tobytes()), ic.as_rgb(over(GREY(), ALPHA())), EXACT
    if mode == "P":
        return palette(), palette_rgb(), EXACT
    if mode == "PA":
        image = Image.merge("PA", (palette(), Image.fromarray(ALPHA())))
        return image, over(palette_rgb(), ALPHA()), EXACT
    if mode == "RGB":
        return rgb(), REF(), EXACT
    if mode == "RGBA":
        return rgba(), over(REF(), ALPHA()), EXACT
    if mode == "RGBX":
        return rgb().convert("RGBX"), REF(), EXACT
    if mode == "RGBa":
        data = np.dstack([premultiply(REF(), ALPHA()), ALPHA()])
        return Image.frombytes("RGBa", size, data.tobytes()), over(REF(), ALPHA()), EXACT
    if mode == "CMYK":
        return cmyk_image(cmyk_with_black()), cmyk_naive_rendered(cmyk_with_black()), EXACT
    if mode == "YCbCr":
        image = rgb().convert(mode)
        return image, ic.ycbcr_to_rgb(np.asarray(image)), ROUNDING
    if mode == "HSV":
        image = rgb().convert(mode)
        return image, ic.hsv_to_rgb(np.asarray(image)), ROUNDING
    if mode == "LAB":
        return lab_image(), ic.lab_to_srgb(np.asarray(lab_image())), COLOUR_MANAGED
    if mode.startswith("I;16"):
        dtype = {"I;16B": ">u2", "I;16N": "=u2"}.get(mode, "<u2")
        data = (GREY().astype(np.uint32) * 257).astype(dtype)
        return Image.frombytes(mode, size, data.tobytes()), grey_out, EXACT
    if mode == "I":
        return grey_image("I", GREY().astype(np.int32) * 257), grey_out, EXACT
    if mode == "F":
        return grey_image("F", GREY() / 255), grey_out, EXACT
    raise AssertionError(f"no reference rendering for Pillow mode {mode!r}: add one")


@pytest.mark.parametrize("mode", sorted(Image.MODES))
def test_every_pillow_mode_renders_what_a_viewer_shows(mode: str) -> None:
    image, expected, tolerance = mode_case(mode)
    assert image.mode == mode
    pixels = imaging._render(image, name="case")
    assert_close(pixels, expected, tolerance)


# ------------------------------------------------------------------------------ regressions


def test_16_bit_grey_png_is_not_white() -> None:
    """Issue #14: ``convert('RGB')`` clipped I;16 to white and the job reported success."""
    data = save(grey16(), "PNG")
    old = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert old.mean() > 240  # what the old decoder returned: nearly all white
    pixels = decode_image(data).pixels
    np.testing.assert_array_equal(pixels, grey_rgb())


def test_colour_management_changes_the_picture() -> None:
    """The ICC cases would pass without colour management only if it made no difference."""
    stored = adobe_stored()
    assert np.abs(stored.astype(int) - REF()).mean() > 5
    assert np.abs(ic.adobe_rgb_to_srgb(stored).astype(int) - REF()).mean() < 0.5
    press = ic.cmyk_for_press(REF())
    naive = np.asarray(cmyk_image(press).convert("RGB")).astype(int)
    assert np.abs(naive - cmyk_rendered(press)).mean() > 10


def test_transparent_pixels_are_not_their_hidden_colour() -> None:
    """The old decoder dropped alpha: a fully transparent pixel showed its stored colour."""
    image = np.dstack([REF(), ALPHA()])
    pixels = decode_image(save(Image.fromarray(image), "PNG")).pixels
    assert (pixels[ALPHA() == 0] == 255).all()
