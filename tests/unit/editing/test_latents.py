"""Stored W+ codes: written by --save-latents, read by facedit edit --latent."""

from __future__ import annotations

import io

import pytest
import torch

from shared.editing.latents import InvalidLatent, check_latent, decode_latent, encode_latent


def test_round_trip_keeps_the_codes_exactly():
    w = torch.randn(2, 18, 512)
    stored = decode_latent(encode_latent(w, "ab" * 32, "toy:1234"))
    assert torch.equal(stored.w, w) and stored.input_sha256 == "ab" * 32
    assert stored.models == "toy:1234"
    check_latent(stored, faces=2, n_latent=18, style_dim=512)


class Evil:
    """An object only full unpickling could restore."""


def test_a_file_that_needs_unpickling_is_refused():
    buffer = io.BytesIO()
    torch.save({"format": "facedit-latent-v1", "w": Evil()}, buffer)
    with pytest.raises(InvalidLatent, match="not a facedit latent file"):
        decode_latent(buffer.getvalue(), "evil.pt")


@pytest.mark.parametrize("data", [b"", b"hello", None])
def test_garbage_is_refused(data):
    if data is None:
        buffer = io.BytesIO()
        torch.save({"w": torch.zeros(1, 18, 512)}, buffer)  # no format marker
        data = buffer.getvalue()
    with pytest.raises(InvalidLatent):
        decode_latent(data)


def test_codes_must_fit_the_models_and_the_faces():
    stored = decode_latent(encode_latent(torch.zeros(1, 10, 64), None, "toy:1234"))
    with pytest.raises(InvalidLatent, match="do not fit these models"):
        check_latent(stored, faces=1, n_latent=18, style_dim=512)
    with pytest.raises(InvalidLatent, match="2 face"):
        check_latent(stored, faces=2, n_latent=10, style_dim=64)
    nan = torch.zeros(1, 10, 64)
    nan[0, 0, 0] = float("nan")
    with pytest.raises(InvalidLatent, match="NaN"):
        decode_latent(encode_latent(nan, None, "toy"))
