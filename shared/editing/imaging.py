"""Decode, validate and encode images; conversions between arrays and tensors.

Decoding is defensive: the pixel count is checked from the header before any pixel is
decoded (decompression bombs), EXIF orientation is applied, truncated and non-image
files are refused with a stable error code, and every pixel mode Pillow can open is
rendered to the 8-bit sRGB picture a viewer shows — or refused, never guessed (see
:func:`decode_image` for the rules).
"""

from __future__ import annotations

import functools
import hashlib
import io
import struct
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from shared.core.errors import ImageTooLarge, ImageTooSmall, InvalidImage

ENCODINGS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}

#: Transparent pixels are composited over this grey level (white), as browsers show an
#: image on a white page.
BACKGROUND = 255

# Pillow raises these (besides its own UnidentifiedImageError) for damaged files
_DECODE_ERRORS = (
    OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError,
    ZeroDivisionError, struct.error,
)  # fmt: skip


@dataclass(frozen=True)
class DecodedImage:
    pixels: np.ndarray  # (H, W, 3) uint8 RGB
    format: str  # "png", "jpeg", ...
    sha256: str

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)"""
        return self.pixels.shape[1], self.pixels.shape[0]


def decode_image(
    data: bytes, *, min_side: int = 64, max_pixels: int = 64_000_000, name: str = "image"
) -> DecodedImage:
    """Bytes → the picture a viewer shows, as an (H, W, 3) uint8 sRGB array, or a
    :class:`~shared.core.errors.FaceditError` saying what is wrong.

    Refusals: an empty or unrecognised file, corrupt or truncated data, and anything
    that Pillow opens but that has no unambiguous rendering raise ``InvalidImage``
    (``invalid_image``); more than ``max_pixels`` pixels (checked from the header, before
    decoding) raises ``ImageTooLarge``; a shorter side under ``min_side`` raises
    ``ImageTooSmall``.

    Rendering rules, per Pillow mode:

    * Frames: multi-frame files (animated GIF, WebP, APNG, multi-page TIFF) give their
      first frame, the one Pillow loads on open.
    * Orientation: EXIF orientation 1–8 (or the XMP ``tiff:Orientation`` Pillow reads) is
      applied; TIFF orientation is applied by Pillow when it loads the file. A missing,
      unknown or unreadable orientation counts as 1, as viewers ignore it.
    * Transparency (``RGBA``, ``LA``, ``PA``, palette transparency of ``P`` images — a
      GIF transparency index, PNG tRNS alphas —, a PNG tRNS colour key on ``1``, ``L``,
      ``I;16`` and ``RGB``, premultiplied ``La`` and ``RGBa``) is composited over white
      (:data:`BACKGROUND`), as browsers show the image on a white page. Colour is
      converted to sRGB before compositing. A tRNS colour key on a 16-bit RGB PNG is
      refused: Pillow reduces those pixels to 8 bits, so the key cannot be matched.
    * ``1``, ``L``, ``P``, ``RGB``, ``RGBX``, ``HSV``, ``YCbCr`` (JPEG/JFIF full-range
      BT.601): Pillow's conversion to RGB.
    * ``CMYK``: with an embedded CMYK ICC profile, that profile to sRGB (ImageCms,
      the profile's default rendering intent); without one, Pillow's conversion
      (R = (255 − C)(255 − K)/255, …), which is what browsers do. Every CMYK JPEG is
      read as Adobe-inverted, with or without an APP14 marker, as Pillow and browsers
      (Firefox, Chromium) read them.
    * ``LAB``: CIE L*a*b* relative to D50 (the ICC connection space, as Pillow's and
      LittleCMS's LAB) to sRGB, in floating point (Bradford adaptation to D65).
    * ICC profiles: a grey, RGB or CMYK profile that is not sRGB (its description does
      not name sRGB) is applied to convert the pixels to sRGB, as a colour-managed
      viewer does. A profile that cannot be read, or whose colour space does not match
      the pixels, is ignored, as browsers ignore it. PNG gAMA/cHRM chunks are not
      applied (no ICC profile, no conversion).
    * 16-bit grey (``I;16``, ``I;16L``, ``I;16B``, ``I;16N``): v × 255 / 65535, rounded;
      a TIFF that declares fewer bits per sample (e.g. 12) is scaled by its own maximum
      (2¹² − 1); a min-is-white TIFF is inverted first. Multi-band 16-bit images (RGB,
      RGBA and LA PNGs; RGB, RGBA and CMYK TIFFs) are reduced to 8 bits by Pillow (the
      high byte, at most one level below rounding) and then follow their 8-bit rules.
    * ``I`` (32-bit integer grey): negative values are refused (signed data has no
      canonical display); otherwise the data are scaled by their bit depth —
      16 bits for PGM (Pillow rescales any maxval to 0–65535) and PNG, else the smallest of
      8, 16 and 32 bits that holds the largest value — so 16-bit data stored as 32-bit
      integers show as 16-bit data. Unsigned 32-bit TIFFs are read as unsigned. A
      min-is-white 32-bit integer TIFF is refused.
    * ``F`` (32-bit float grey): values must be finite and lie in [0, 1] (an overshoot of
      up to one grey level, 1/255, is clipped); they are shown as intensity v × 255,
      rounded (min-is-white TIFFs as 1 − v). Other ranges (HDR, raw measurements) have
      no unambiguous display and are refused rather than normalised.
    * Any other mode is refused.

    The common case, an RGB JPEG/PNG with no ICC profile (or an sRGB one) and no
    orientation, costs no pass over the pixels beyond Pillow's decode and one copy.
    """
    if not data:
        raise InvalidImage(f"{name}: the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageTooLarge(
                    f"{name}: {width}x{height} = {width * height} pixels exceeds the limit of "
                    f"{max_pixels} (FACEDIT_MAX_IMAGE_PIXELS)"
                )
            fmt = (image.format or "unknown").lower()
            image.load()
    except ImageTooLarge:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(
            f"{name}: the image exceeds the limit of {max_pixels} pixels "
            f"(FACEDIT_MAX_IMAGE_PIXELS); {exc}"
        ) from exc
    except UnidentifiedImageError as exc:
        raise InvalidImage(f"{name}: not a recognised image format") from exc
    except _DECODE_ERRORS as exc:
        raise InvalidImage(f"{name}: the image data is corrupt or truncated ({exc})") from exc
    orientation = _orientation(image)
    width, height = image.size
    if orientation >= 5:
        width, height = height, width
    if min(width, height) < min_side:
        raise ImageTooSmall(
            f"{name}: {width}x{height} is smaller than the minimum {min_side}x{min_side}"
        )
    tags = getattr(image, "tag_v2", None)  # TIFF tags: transposing drops them
    try:
        if orientation != 1:
            image = image.transpose(_ORIENT[orientation])
        pixels = _render(image, fmt=fmt, data=data, tags=tags, name=name)
    except (OSError, ValueError) as exc:  # Pillow failing in a conversion: refuse, never guess
        raise InvalidImage(f"{name}: cannot render {image.mode} pixels ({exc})") from exc
    return DecodedImage(pixels=pixels, format=fmt, sha256=hashlib.sha256(data).hexdigest())


# EXIF orientation → the transposition that turns the stored rows into the displayed picture
_ORIENT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,  # shown rotated 90° clockwise
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,  # shown rotated 90° counter-clockwise
}


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # unreadable EXIF: viewers ignore it, and so do we
        return 1
    return value if isinstance(value, int) and value in _ORIENT else 1


# ------------------------------------------------------------------------------ rendering


def _render(
    image: Image.Image,
    *,
    fmt: str = "",
    data: bytes = b"",
    tags: Mapping[int, Any] | None = None,
    name: str = "image",
) -> np.ndarray:
    """The loaded frame → (H, W, 3) uint8 sRGB, writable and C-contiguous. ``fmt``,
    ``data`` and the TIFF ``tags`` tell how Pillow read the samples."""
    mode = image.mode
    icc = image.info.get("icc_profile") or None
    if mode == "RGB" and image.info.get("transparency") is None and icc is None:
        return np.array(image)  # the common case: one copy
    space, colour, alpha, premultiplied = _split(image, fmt, data, tags, name)
    if alpha is not None and alpha.min() == 255:
        alpha = None
    transform = _srgb_transform(icc, space, name) if icc is not None else None
    if transform is not None:
        if alpha is not None and premultiplied:
            colour, premultiplied = _unpremultiply(colour, alpha), False
        colour = np.asarray(transform.apply(_pil(colour, space)))
        space = "RGB"
    elif space == "CMYK":
        colour = np.asarray(_pil(colour, "CMYK").convert("RGB"))
        space = "RGB"
    elif space == "LAB":
        colour = _lab_to_srgb(colour)
        space = "RGB"
    if alpha is not None:
        colour = _over_background(colour, alpha, premultiplied)
    if colour.ndim == 2:  # grey
        colour = np.repeat(colour[:, :, None], 3, axis=2)
    return np.ascontiguousarray(colour) if colour.flags.writeable else colour.copy()


def _split(
    image: Image.Image, fmt: str, data: bytes, tags: Mapping[int, Any] | None, name: str
) -> tuple[str, np.ndarray, np.ndarray | None, bool]:
    """(colour space, colour (H, W) or (H, W, C) uint8, alpha (H, W) uint8 or None,
    alpha premultiplied?) of the loaded frame, in its own colour space (L, RGB, CMYK, LAB)."""
    mode = image.mode
    key = image.info.get("transparency")
    if mode == "RGB":
        colour = np.asarray(image)
        if isinstance(key, tuple) and len(key) == 3:
            if fmt == "png" and _png_bit_depth(data) == 16:
                raise InvalidImage(
                    f"{name}: a 16-bit RGB PNG with a tRNS transparent colour is not "
                    "supported (its pixels are reduced to 8 bits before the colour key "
                    "can be matched)"
                )
            return "RGB", colour, _key_alpha(np.all(colour == np.asarray(key), axis=2)), False
        return "RGB", colour, None, False
    if mode in ("RGBA", "RGBa"):
        array = np.asarray(image)
        return "RGB", array[:, :, :3], array[:, :, 3], mode == "RGBa"
    if mode == "RGBX":
        return "RGB", np.asarray(image)[:, :, :3], None, False
    if mode in ("LA", "La"):
        array = np.asarray(image)
        return "L", array[:, :, 0], array[:, :, 1], mode == "La"
    if mode in ("1", "L"):
        colour = np.asarray(image.convert("L") if mode == "1" else image)
        if isinstance(key, int):
            if mode == "1":
                key = 255 if key else 0
            elif fmt == "png":  # tRNS holds the raw 2- or 4-bit sample, Pillow scales pixels
                key *= {1: 255, 2: 85, 4: 17}.get(_png_bit_depth(data), 1)
            return "L", colour, _key_alpha(colour == key), False
        return "L", colour, None, False
    if mode in ("P", "PA"):
        palette = image.palette
        has_alpha = mode == "PA" or key is not None or (palette is not None and "A" in palette.mode)
        if has_alpha:
            array = np.asarray(image.convert("RGBA"))
            return "RGB", array[:, :, :3], array[:, :, 3], False
        return "RGB", np.asarray(image.convert("RGB")), None, False
    if mode == "CMYK":
        return "CMYK", np.asarray(image), None, False
    if mode == "LAB":
        return "LAB", np.asarray(image), None, False
    if mode in ("YCbCr", "HSV"):
        return "RGB", np.asarray(image.convert("RGB")), None, False
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        raw = np.asarray(image)
        alpha = _key_alpha(raw == key) if isinstance(key, int) else None
        return "L", _grey16(raw, tags), alpha, False
    if mode == "I":
        return "L", _grey32(np.asarray(image), tags, fmt, name), None, False
    if mode == "F":
        return "L", _grey_float(np.asarray(image), tags, name), None, False
    raise InvalidImage(f"{name}: pixel mode {mode!r} is not supported")


def _key_alpha(transparent: np.ndarray) -> np.ndarray:
    return np.where(transparent, np.uint8(0), np.uint8(255))


def _png_bit_depth(data: bytes) -> int:
    """The bit depth in a PNG's IHDR (signature 8 + length 4 + type 4 + size 8 bytes)."""
    return data[24] if len(data) > 24 else 8


def _tiff_tag(tags: Mapping[int, Any] | None, tag: int) -> Any:
    return None if tags is None else tags.get(tag)


def _min_is_white(tags: Mapping[int, Any] | None) -> bool:
    return _tiff_tag(tags, 262) == 0  # PhotometricInterpretation: WhiteIsZero


def _scale(values: np.ndarray, top: int) -> np.ndarray:
    """Integers in [0, top] → uint8 v × 255 / top, rounded (exact integer arithmetic)."""
    wide = np.minimum(values.astype(np.uint32 if top <= 0xFFFF else np.uint64), top)
    wide *= 255
    wide += top // 2
    wide //= top
    return wide.astype(np.uint8)


def _grey16(raw: np.ndarray, tags: Mapping[int, Any] | None) -> np.ndarray:
    bits = _tiff_tag(tags, 258)  # BitsPerSample: 12-bit TIFFs open as I;16, unscaled
    depth = bits[0] if isinstance(bits, tuple) and bits and 0 < bits[0] < 16 else 16
    top = (1 << depth) - 1
    values = raw
    if _min_is_white(tags):
        values = top - np.minimum(raw.astype(np.uint32), top)
    return _scale(values, top)


def _grey32(raw: np.ndarray, tags: Mapping[int, Any] | None, fmt: str, name: str) -> np.ndarray:
    values = raw
    sample_format = _tiff_tag(tags, 339)  # SampleFormat: 1 unsigned, 2 signed
    bits = _tiff_tag(tags, 258)
    if (
        fmt == "tiff"
        and bits in ((32,), 32)
        and (sample_format is None or tuple(np.atleast_1d(sample_format))[:1] == (1,))
    ):
        values = raw.view(np.uint32)  # Pillow reads unsigned 32-bit samples as signed
    low, high = int(values.min()), int(values.max())
    if low < 0:
        raise InvalidImage(
            f"{name}: 32-bit integer pixels with negative values ({low}..{high}) have no "
            "unambiguous display"
        )
    if _min_is_white(tags):
        raise InvalidImage(f"{name}: min-is-white 32-bit integer TIFFs are not supported")
    if fmt in ("ppm", "png"):  # PGM rescaled to 16 bits; older Pillows open 16-bit PNGs as I
        depth = 16
    else:
        depth = 8 if high <= 0xFF else 16 if high <= 0xFFFF else 32
    return _scale(values, (1 << depth) - 1)


def _grey_float(raw: np.ndarray, tags: Mapping[int, Any] | None, name: str) -> np.ndarray:
    values = raw.astype(np.float32, copy=False)
    if not np.isfinite(values).all():
        raise InvalidImage(f"{name}: floating-point pixels include NaN or infinity")
    low, high = float(values.min()), float(values.max())
    slack = 1 / 255
    if low < -slack or high > 1 + slack:
        raise InvalidImage(
            f"{name}: floating-point pixels span [{low:g}, {high:g}]; only [0, 1] has an "
            "unambiguous display"
        )
    if _min_is_white(tags):
        values = 1 - values
    return np.rint(np.clip(values, 0, 1) * 255).astype(np.uint8)


def _unpremultiply(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.uint32)
    if colour.ndim == 3:
        a = a[:, :, None]
    c = np.minimum(colour.astype(np.uint32), a)
    return np.where(a > 0, (c * 255 + a // 2) // np.maximum(a, 1), 0).astype(np.uint8)


def _over_background(colour: np.ndarray, alpha: np.ndarray, premultiplied: bool) -> np.ndarray:
    """Composite over :data:`BACKGROUND`, rounded exactly in integers."""
    if colour.ndim == 3:
        alpha = alpha[:, :, None]
    if premultiplied:  # colour is C·a/255 already (C > a would be invalid: clip)
        out = np.minimum(colour, alpha).astype(np.uint16)
        out *= 255
    else:
        out = colour.astype(np.uint16)
        out *= alpha
    out += BACKGROUND * (255 - alpha.astype(np.uint16))  # v = C·a + B·(255 − a) ≤ 65025
    # round(v / 255) without a division: (t + (t >> 8)) >> 8 with t = v + 128, exact here
    out += 128
    out += out >> 8
    out >>= 8
    return out.astype(np.uint8)


def _pil(array: np.ndarray, mode: str) -> Image.Image:
    array = np.ascontiguousarray(array)
    return Image.frombytes(mode, (array.shape[1], array.shape[0]), array.tobytes())


# ------------------------------------------------------------------------------ colour management

_ICC_SPACES = {"L": "GRAY", "RGB": "RGB", "CMYK": "CMYK"}
_TRANSFORMS: dict[tuple[bytes, str], Any] = {}
_TRANSFORMS_LOCK = threading.Lock()
_TRANSFORMS_MAX = 32
_NOCACHE = 0x0040  # LittleCMS cmsFLAGS_NOCACHE, ImageCms.Flags.NOCACHE in recent Pillow


def _srgb_transform(icc: bytes, space: str, name: str) -> Any:
    """A cached ImageCms transform from the embedded profile to sRGB, or None when the
    profile is sRGB already, unreadable, or not for this colour space."""
    if space not in _ICC_SPACES:
        return None
    key = (hashlib.sha256(icc).digest(), space)
    with _TRANSFORMS_LOCK:
        if key in _TRANSFORMS:
            return _TRANSFORMS[key]
    transform = _build_srgb_transform(icc, space, name)
    with _TRANSFORMS_LOCK:
        while len(_TRANSFORMS) >= _TRANSFORMS_MAX:
            _TRANSFORMS.pop(next(iter(_TRANSFORMS)))
        _TRANSFORMS[key] = transform
    return transform


def _build_srgb_transform(icc: bytes, space: str, name: str) -> Any:
    ImageCms = _image_cms(name)
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        header = profile.profile
        if header.xcolor_space.strip() != _ICC_SPACES[space]:
            return None  # e.g. an RGB profile on a grey image: viewers ignore it
        if space == "RGB" and "srgb" in (header.profile_description or "").lower():
            return None
        return ImageCms.buildTransform(
            profile, _srgb_profile(), space, "RGB",
            renderingIntent=ImageCms.getDefaultIntent(profile),
            flags=_NOCACHE,  # the transform is shared between threads
        )  # fmt: skip
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None  # an unreadable or unusable profile: viewers ignore it


def _image_cms(name: str) -> Any:
    try:
        from PIL import ImageCms
    except ImportError as exc:  # Pillow built without LittleCMS
        raise InvalidImage(
            f"{name}: the image needs colour management, which this Pillow lacks"
        ) from exc
    return ImageCms


@functools.cache
def _srgb_profile() -> Any:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


# CIE L*a*b* (D50) → linear sRGB: XYZ(D50) → Bradford to D65 → sRGB primaries
_D50 = np.array([0.9642, 1.0, 0.8249])
_XYZ_D50_TO_LINEAR_SRGB = np.linalg.inv(
    np.array(
        [[1.0478112, 0.0228866, -0.0501270], [0.0295424, 0.9904844, -0.0170491],
         [-0.0092345, 0.0150436, 0.7521316]]
    )
    @ np.array(
        [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
         [0.0193339, 0.1191920, 0.9503041]]
    )
)  # fmt: skip


def _lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """8-bit L*a*b* as Pillow exports it (L* × 255/100; a*, b* signed bytes) → sRGB uint8.

    Computed in floating point: LittleCMS's 8-bit Lab path (and Pillow's own LAB → RGB,
    which agrees with it) differs from the exact formula by up to ~40 levels near the
    gamut edge."""
    light = lab[:, :, 0].astype(np.float32) * (100 / 255)
    a = lab[:, :, 1].view(np.int8).astype(np.float32)
    b = lab[:, :, 2].view(np.int8).astype(np.float32)
    fy = (light + 16) / 116
    f = np.stack([fy + a / 500, fy, fy - b / 200], axis=2)
    edge = 6 / 29
    xyz = np.where(f > edge, f**3, 3 * edge**2 * (f - 4 / 29)) * _D50.astype(np.float32)
    linear = np.clip(xyz @ _XYZ_D50_TO_LINEAR_SRGB.T.astype(np.float32), 0, 1)
    encoded = np.where(
        linear <= 0.0031308, linear * 12.92, 1.055 * np.power(linear, 1 / 2.4) - 0.055
    )
    return np.rint(encoded * 255).astype(np.uint8)


def encode_image(pixels: np.ndarray, fmt: str = "png", quality: int = 95) -> bytes:
    """(H, W, 3|1) uint8 or (H, W) → encoded bytes."""
    if fmt not in ENCODINGS:
        raise ValueError(f"fmt: unknown image format {fmt!r}; known: {sorted(ENCODINGS)}")
    array = np.asarray(pixels)
    if array.dtype != np.uint8:
        raise ValueError(f"pixels: expected uint8, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    buffer = io.BytesIO()
    # zlib level 1: ~3.5x faster than 6 for ~6 % larger files; encoding dominates cheap jobs
    kwargs = {"quality": quality} if ENCODINGS[fmt] in {"JPEG", "WEBP"} else {"compress_level": 1}
    Image.fromarray(array).save(buffer, format=ENCODINGS[fmt], **kwargs)
    return buffer.getvalue()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def to_tensor(pixels: np.ndarray):  # -> torch.Tensor
    """(H, W, C) uint8 → (1, C, H, W) float32 in [0, 1]."""
    import torch

    # copy when needed for C order, and always for read-only memory (torch wants it writable)
    array = np.array(pixels, copy=True if not pixels.flags.writeable else None, order="C")
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def to_uint8(tensor) -> np.ndarray:
    """(C, H, W) or (1, C, H, W) float in [0, 1] → (H, W, C) uint8 (rounded, clamped)."""
    t = tensor.detach()
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(f"tensor: expected a single image, got batch of {t.shape[0]}")
        t = t[0]
    t = t.float().clamp(0, 1)  # a new tensor: the steps below may work in place
    t = t.mul_(255).round_().to("cpu").byte()
    return t.permute(1, 2, 0).numpy()


def to_batch(images: list[np.ndarray], size: int):  # -> torch.Tensor
    """(H, W, 3) uint8 images → (B, 3, size, size) float32 in [0, 1], each written once into
    the batch (resized like ``resize(to_tensor(image), size)`` when it is not size²); the
    values are those of ``torch.cat([resize(to_tensor(i), size) for i in images])``."""
    import torch

    from shared.editing.pipeline import resize

    batch = torch.empty((len(images), 3, size, size))
    for index, image in enumerate(images):
        if image.ndim == 3 and image.shape == (size, size, 3):
            # planar uint8 first (numpy's transpose copy is the fastest), then one widening copy
            planar = np.ascontiguousarray(image.transpose(2, 0, 1))
            batch[index].copy_(torch.from_numpy(planar)).div_(255.0)
        else:
            batch[index] = resize(to_tensor(image), size)[0]
    return batch
