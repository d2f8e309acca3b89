"""Reference pictures and hand-built image files for the decode catalogue.

Everything is built in memory: a known 8-bit RGB reference picture (smooth gradients, so
scaling errors show, and sharp coloured shapes, so channel-order errors show), files that
Pillow cannot write (16-bit RGB PNGs, 12-bit TIFFs, ...), and ICC profiles written byte by
byte (a real Adobe RGB (1998) matrix/TRC profile, a grey gamma-1.8 profile and a CMYK
lookup-table profile), since none can be downloaded and Pillow only creates sRGB, LAB and
XYZ profiles.
"""

from __future__ import annotations

import functools
import struct
import zlib

import numpy as np

WIDTH, HEIGHT = 96, 72  # not square, so that a wrong rotation changes the shape


@functools.cache
def reference_rgb() -> np.ndarray:
    """(H, W, 3) uint8: three gradients across the full 0–255 range plus sharp shapes."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    picture = np.stack(
        [
            np.rint(x * 255 / (WIDTH - 1)),
            np.rint(y * 255 / (HEIGHT - 1)),
            np.rint((WIDTH - 1 - x + y) * 255 / (WIDTH + HEIGHT - 2)),
        ],
        axis=2,
    ).astype(np.uint8)
    picture[6:22, 6:22] = (255, 0, 0)
    picture[6:22, 28:44] = (0, 255, 0)
    picture[6:22, 50:66] = (0, 0, 255)
    picture[((y - 50) ** 2 + (x - 20) ** 2) < 100] = (255, 255, 0)
    picture[40:64, 60:66] = (0, 0, 0)
    picture[40:64, 70:76] = (255, 255, 255)
    picture[44:60, 80:90] = (255, 0, 255)
    picture.flags.writeable = False
    return picture


@functools.cache
def reference_grey() -> np.ndarray:
    """(H, W) uint8: ITU-R 601 luma of the reference, every level 0–255 reachable."""
    r, g, b = (reference_rgb()[:, :, i].astype(np.float64) for i in range(3))
    grey = np.rint(r * 0.299 + g * 0.587 + b * 0.114).astype(np.uint8)
    grey[0, :] = np.linspace(0, 255, WIDTH).round().astype(np.uint8)  # both extremes
    grey.flags.writeable = False
    return grey


@functools.cache
def reference_alpha() -> np.ndarray:
    """(H, W) uint8: a ramp 0–255, a fully transparent block and opaque elsewhere."""
    alpha = np.full((HEIGHT, WIDTH), 255, np.uint8)
    alpha[:, : WIDTH // 2] = np.linspace(0, 255, WIDTH // 2).round().astype(np.uint8)
    alpha[50:70, 60:90] = 0
    alpha.flags.writeable = False
    return alpha


def over_white(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The straight-alpha picture composited over white, as floats then rounded."""
    c = colour.astype(np.float64)
    a = alpha.astype(np.float64) / 255
    if c.ndim == 3:
        a = a[:, :, None]
    return np.rint(c * a + 255 * (1 - a)).astype(np.uint8)


def as_rgb(picture: np.ndarray) -> np.ndarray:
    return picture if picture.ndim == 3 else np.repeat(picture[:, :, None], 3, axis=2)


# ------------------------------------------------------------------------------ PNG / TIFF


def _chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def png_file(
    samples: np.ndarray, *, bit_depth: int, colour_type: int, chunks: tuple[bytes, ...] = ()
) -> bytes:
    """A PNG from (H, W[, C]) unsigned samples at ``bit_depth`` (1, 2 and 4 bits: grey,
    packed most significant first; 16 bits: written big-endian). ``chunks`` (e.g. tRNS)
    go between IHDR and IDAT."""
    height, width = samples.shape[:2]
    if bit_depth == 16:
        rows = samples.astype(">u2").reshape(height, -1).view(np.uint8)
    elif bit_depth == 8:
        rows = samples.astype(np.uint8).reshape(height, -1)
    else:  # grey, 1/2/4 bits: pack MSB first
        per_byte = 8 // bit_depth
        padded = np.zeros((height, -(-width // per_byte) * per_byte), np.uint8)
        padded[:, :width] = samples
        groups = padded.reshape(height, -1, per_byte).astype(np.uint16)
        shifts = np.arange(per_byte - 1, -1, -1) * bit_depth
        rows = (groups << shifts).sum(axis=2).astype(np.uint8)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + b"".join(chunks)
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


def trns_chunk(*values: int) -> bytes:
    return _chunk(b"tRNS", struct.pack(f">{len(values)}H", *values))


def tiff_12bit(values: np.ndarray) -> bytes:
    """An uncompressed little-endian 12-bit grey TIFF (even width: 2 pixels per 3 bytes)."""
    height, width = values.shape
    assert width % 2 == 0
    v = values.astype(np.uint16).reshape(height, width // 2, 2)
    packed = np.stack(
        [v[..., 0] >> 4, ((v[..., 0] & 0xF) << 4) | (v[..., 1] >> 8), v[..., 1] & 0xFF], axis=2
    ).astype(np.uint8)
    pixels = packed.tobytes()
    tags = [  # (tag, type SHORT=3 / LONG=4, value)
        (256, 4, width),
        (257, 4, height),
        (258, 3, 12),
        (259, 3, 1),
        (262, 3, 1),
        (273, 4, 0),  # strip offset, patched below
        (277, 3, 1),
        (278, 4, height),
        (279, 4, len(pixels)),
    ]
    ifd_size = 2 + 12 * len(tags) + 4
    offset = 8 + ifd_size
    ifd = struct.pack("<H", len(tags))
    for tag, kind, value in tags:
        value = offset if tag == 273 else value
        packed_value = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, 1) + packed_value
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + pixels


def strip_adobe_marker(jpeg: bytes) -> bytes:
    """The JPEG without its APP14 "Adobe" segment (Pillow then reads CMYK as not inverted)."""
    out, i = bytearray(jpeg[:2]), 2
    while i < len(jpeg):
        marker = jpeg[i + 1]
        if marker == 0xDA:  # start of scan: the rest is entropy-coded data
            out += jpeg[i:]
            break
        length = struct.unpack(">H", jpeg[i + 2 : i + 4])[0]
        if not (marker == 0xEE and jpeg[i + 4 : i + 9] == b"Adobe"):
            out += jpeg[i : i + 2 + length]
        i += 2 + length
    return bytes(out)


# ------------------------------------------------------------------------------ colour

D50 = np.array([0.9642, 1.0, 0.8249])
_SRGB_TO_XYZ_D65 = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
     [0.0193339, 0.1191920, 0.9503041]]
)  # fmt: skip
_ADOBE_TO_XYZ_D65 = np.array(
    [[0.5766690, 0.1855582, 0.1882286], [0.2973450, 0.6273636, 0.0752915],
     [0.0270314, 0.0706889, 0.9913375]]
)  # fmt: skip
_BRADFORD_D65_TO_D50 = np.array(
    [[1.0478112, 0.0228866, -0.0501270], [0.0295424, 0.9904844, -0.0170491],
     [-0.0092345, 0.0150436, 0.7521316]]
)  # fmt: skip
ADOBE_GAMMA = 563 / 256  # the u8Fixed8 value of Adobe RGB (1998)'s TRC


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def srgb_to_adobe_rgb(rgb: np.ndarray) -> np.ndarray:
    """8-bit sRGB → 8-bit Adobe RGB (1998) encoding of the same colours (both D65)."""
    linear = srgb_to_linear(rgb.astype(np.float64) / 255)
    xyz = linear @ _SRGB_TO_XYZ_D65.T
    adobe = np.clip(xyz @ np.linalg.inv(_ADOBE_TO_XYZ_D65).T, 0, 1)
    return np.rint(adobe ** (1 / ADOBE_GAMMA) * 255).astype(np.uint8)


def _lab_d50(rgb01: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (…, 3) → CIE L*a*b* relative to D50 (the ICC connection space)."""
    xyz = srgb_to_linear(rgb01) @ _SRGB_TO_XYZ_D65.T @ _BRADFORD_D65_TO_D50.T
    t = xyz / D50
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])],
        axis=-1,
    )


# ------------------------------------------------------------------------------ ICC profiles


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(xyz: np.ndarray) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in xyz)


def _curve_tag(gamma: float) -> bytes:
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"


def _desc_tag(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    return (
        b"desc\0\0\0\0"
        + struct.pack(">I", len(ascii_))
        + ascii_
        + struct.pack(">II", 0, 0)
        + struct.pack(">HB", 0, 0)
        + b"\0" * 67
    )


def _profile(device_class: bytes, space: bytes, pcs: bytes, tags: dict[bytes, bytes]) -> bytes:
    """An ICC v2.1 profile: 128-byte header, tag table, 4-byte-aligned tag data."""
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    table, body = struct.pack(">I", len(tags)), b""
    for signature, data in tags.items():
        padded = data + b"\0" * (-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += padded
    size = 128 + table_size + len(body)
    header = (
        struct.pack(">I", size)
        + b"\0\0\0\0"
        + struct.pack(">I", 0x02100000)
        + device_class
        + space
        + pcs
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\0" * 24  # platform, flags, manufacturer, model, attributes
        + struct.pack(">I", 0)  # rendering intent: perceptual
        + b"".join(_s15(v) for v in D50)
        + b"\0" * 48
    )
    assert len(header) == 128
    return header + table + body


@functools.cache
def adobe_rgb_profile() -> bytes:
    """Adobe RGB (1998): its primaries (Bradford-adapted to D50) and gamma 563/256."""
    colorants = _BRADFORD_D65_TO_D50 @ _ADOBE_TO_XYZ_D65  # columns: r, g, b XYZ
    return _profile(
        b"mntr",
        b"RGB ",
        b"XYZ ",
        {
            b"desc": _desc_tag("Adobe RGB (1998) compatible, built by the test"),
            b"wtpt": _xyz_tag(D50),
            b"rXYZ": _xyz_tag(colorants[:, 0]),
            b"gXYZ": _xyz_tag(colorants[:, 1]),
            b"bXYZ": _xyz_tag(colorants[:, 2]),
            b"rTRC": _curve_tag(ADOBE_GAMMA),
            b"gTRC": _curve_tag(ADOBE_GAMMA),
            b"bTRC": _curve_tag(ADOBE_GAMMA),
        },
    )


GREY_GAMMA = 461 / 256  # ≈ 1.8, exactly representable in the u8Fixed8 curve


@functools.cache
def grey_gamma_profile() -> bytes:
    """A grey display profile with a gamma-1.8 tone curve (Mac "Gray Gamma 1.8" style)."""
    return _profile(
        b"mntr",
        b"GRAY",
        b"XYZ ",
        {
            b"desc": _desc_tag("Gray Gamma 1.8, built by the test"),
            b"wtpt": _xyz_tag(D50),
            b"kTRC": _curve_tag(GREY_GAMMA),
        },
    )


CMYK_GAMMA = 1.8  # the test CMYK press: R = ((1 − C)(1 − K))^1.8, not Pillow's naive rule


def cmyk_press_rgb(cmyk01: np.ndarray) -> np.ndarray:
    """What the test CMYK profile says a CMYK value (…, 4) in [0, 1] looks like, in sRGB."""
    white = 1 - cmyk01[..., 3:4]
    return ((1 - cmyk01[..., :3]) * white) ** CMYK_GAMMA


def cmyk_for_press(rgb: np.ndarray) -> np.ndarray:
    """8-bit sRGB → 8-bit CMYK (K = 0) that the test CMYK profile renders as that colour."""
    cmy = 1 - (rgb.astype(np.float64) / 255) ** (1 / CMYK_GAMMA)
    k = np.zeros(rgb.shape[:2] + (1,))
    return np.rint(np.concatenate([cmy, k], axis=2) * 255).astype(np.uint8)


@functools.cache
def cmyk_profile(grid: int = 11) -> bytes:
    """An output-class CMYK profile whose A2B0 (lut16, PCS Lab) is :func:`cmyk_press_rgb`."""
    axis = np.linspace(0, 1, grid)
    cmyk = np.stack(np.meshgrid(axis, axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 4)
    lab = _lab_d50(cmyk_press_rgb(cmyk))
    encoded = np.stack(  # ICC v2 16-bit Lab: L 0–100 → 0–0xFF00, a/b −128–127.996 → 0–0xFFFF
        [lab[:, 0] * 0xFF00 / 100, (lab[:, 1] + 128) * 256, (lab[:, 2] + 128) * 256], axis=1
    )
    clut = np.clip(np.rint(encoded), 0, 0xFFFF).astype(">u2").tobytes()
    ramp = np.linspace(0, 0xFFFF, 2).astype(">u2").tobytes()
    identity = b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    lut = (
        b"mft2\0\0\0\0"
        + struct.pack(">BBBB", 4, 3, grid, 0)
        + identity
        + struct.pack(">HH", 2, 2)
        + ramp * 4
        + clut
        + ramp * 3
    )
    return _profile(
        b"prtr",
        b"CMYK",
        b"Lab ",
        {
            b"desc": _desc_tag("Test press CMYK, built by the test"),
            b"wtpt": _xyz_tag(D50),
            b"A2B0": lut,
        },
    )


def adobe_rgb_to_srgb(adobe: np.ndarray) -> np.ndarray:
    """The reference rendering of 8-bit Adobe RGB (1998) pixels: float math, rounded."""
    linear = (adobe.astype(np.float64) / 255) ** ADOBE_GAMMA
    srgb_linear = np.clip(linear @ _ADOBE_TO_XYZ_D65.T @ np.linalg.inv(_SRGB_TO_XYZ_D65).T, 0, 1)
    return np.rint(linear_to_srgb(srgb_linear) * 255).astype(np.uint8)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1 / 2.4) - 0.055)


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """8-bit CIE L*a*b* as TIFF stores it (L* × 255/100, a* and b* signed) → 8-bit sRGB."""
    light = lab[:, :, 0].astype(np.float64) * 100 / 255
    a, b = (lab[:, :, i].view(np.int8).astype(np.float64) for i in (1, 2))
    fy = (light + 16) / 116
    f = np.stack([fy + a / 500, fy, fy - b / 200], axis=2)
    t = np.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29))
    xyz_d65 = (t * D50) @ np.linalg.inv(_BRADFORD_D65_TO_D50).T
    linear = np.clip(xyz_d65 @ np.linalg.inv(_SRGB_TO_XYZ_D65).T, 0, 1)
    return np.rint(linear_to_srgb(linear) * 255).astype(np.uint8)


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """JPEG/JFIF full-range BT.601 YCbCr → RGB, float then rounded."""
    y, cb, cr = (ycbcr[:, :, i].astype(np.float64) for i in range(3))
    cb, cr = cb - 128, cr - 128
    rgb = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], axis=2)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """Pillow's HSV (hue 0–255 for 0–360°) → RGB, float then rounded."""
    h, s, v = (hsv[:, :, i].astype(np.float64) / 255 for i in range(3))
    sector = np.floor(h * 6) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    rgb = np.zeros(hsv.shape, np.float64)
    for i, channels in enumerate(choices):
        rgb[sector == i] = np.stack(channels, axis=2)[sector == i]
    return np.rint(rgb * 255).astype(np.uint8)
