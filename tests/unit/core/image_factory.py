"""Builders for good and bad image files used by several tests."""

from __future__ import annotations

import struct
import zlib

import numpy as np

from shared.editing.imaging import encode_image


def png_bytes(width: int = 96, height: int = 96, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    return encode_image(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "png")


def jpeg_bytes(width: int = 128, height: int = 128, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    return encode_image(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "jpg")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width×height`` but carries (almost) no pixel data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
