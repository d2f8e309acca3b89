"""StyleGAN2 generator: official key layout, parameter count, and the synthesis math checked
against a deliberately naive re-derivation (per-sample convolutions, zero insertion, explicit FIR).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from shared.models.stylegan2 import Generator, load_generator, upfirdn2d
from tests.model_layouts import layout, official_layout

TOY = {"size": 32, "style_dim": 16, "n_mlp": 2, "channel_scale": 1 / 32}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Toy-sized ops run fastest on one thread, and don't fight parallel test workers for cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def toy_generator(seed: int = 0, **overrides: object) -> Generator:
    """A small generator with every parameter random (biases and noise strengths too)."""
    torch.manual_seed(seed)
    generator = Generator(**{**TOY, **overrides}).eval()
    with torch.no_grad():
        for name, param in generator.named_parameters():
            if name.endswith(("bias", "noise.weight")):
                param.normal_(0.0, 0.3)
    return generator


# --------------------------------------------------------------------------- layout


@pytest.mark.parametrize(
    ("size", "file", "count"),
    [
        (1024, "stylegan2_1024_config-f_g_ema.json", 171),
        (256, "stylegan2_256_config-f_g_ema.json", 135),
    ],
)
def test_state_dict_layout_matches_rosinality(size: int, file: str, count: int) -> None:
    with torch.device("meta"):
        generator = Generator(size, 512, 8, channel_multiplier=2)
    assert layout(generator) == official_layout(file)
    assert len(generator.state_dict()) == count


def test_config_f_1024_counts() -> None:
    with torch.device("meta"):
        generator = Generator(1024)
    assert sum(p.numel() for p in generator.parameters()) == 30_370_060
    assert sum(p.numel() for p in generator.style.parameters()) == 2_101_248
    assert (generator.n_latent, generator.num_layers) == (18, 17)


def test_channel_scale_shrinks_channels_but_keeps_keys() -> None:
    with torch.device("meta"):
        full = Generator(64, 512, 8)
        toy = Generator(64, 512, 8, channel_scale=1 / 16)
    assert list(toy.state_dict()) == list(full.state_dict())
    assert toy.state_dict()["convs.0.conv.weight"].shape == (1, 32, 32, 3, 3)


# --------------------------------------------------------------------------- naive reference

SQRT2 = math.sqrt(2.0)


def naive_lrelu(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x >= 0, x, 0.2 * x) * SQRT2


def naive_fir(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """True 2-D convolution (flipped kernel) written as a sum of shifted slices."""
    kh, kw = kernel.shape
    out_h, out_w = x.shape[-2] - kh + 1, x.shape[-1] - kw + 1
    out = torch.zeros(*x.shape[:-2], out_h, out_w, dtype=x.dtype)
    for a in range(kh):
        for b in range(kw):
            out += x[..., a : a + out_h, b : b + out_w] * kernel[kh - 1 - a, kw - 1 - b]
    return out


def zero_insert(x: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(*x.shape[:-2], 2 * x.shape[-2], 2 * x.shape[-1], dtype=x.dtype)
    out[..., ::2, ::2] = x
    return out


def blur_kernel(gain: float) -> torch.Tensor:
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = taps[:, None] * taps[None, :]
    return k / k.sum() * gain


def naive_modulated_conv(
    sd: dict, prefix: str, x: torch.Tensor, w: torch.Tensor, demodulate: bool, upsample: bool
) -> torch.Tensor:
    weight = sd[f"{prefix}.weight"][0]  # (out, in, k, k)
    out_c, in_c, k, _ = weight.shape
    mod_w, mod_b = sd[f"{prefix}.modulation.weight"], sd[f"{prefix}.modulation.bias"]
    outputs = []
    for b in range(x.shape[0]):
        style = mod_w @ w[b] / math.sqrt(mod_w.shape[1]) + mod_b
        wb = weight / math.sqrt(in_c * k * k) * style.view(1, in_c, 1, 1)
        if demodulate:
            wb = wb / torch.sqrt((wb**2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        xb = x[b : b + 1]
        if upsample:
            # Transposed stride-2 conv = zero insertion + full convolution, then the 4x4 blur.
            height, width = 2 * xb.shape[-2] + 1, 2 * xb.shape[-1] + 1
            full = F.conv2d(F.pad(zero_insert(xb), [k - 1] * 4), wb.flip(2, 3))
            yb = naive_fir(F.pad(full[..., :height, :width], [1, 1, 1, 1]), blur_kernel(4.0))
        else:
            yb = F.conv2d(xb, wb, padding=k // 2)
        outputs.append(yb)
    return torch.cat(outputs)


def naive_synthesis(sd: dict, w_plus: torch.Tensor, noises: list[torch.Tensor]) -> torch.Tensor:
    def styled(prefix: str, x: torch.Tensor, w: torch.Tensor, noise, upsample: bool):
        x = naive_modulated_conv(sd, f"{prefix}.conv", x, w, True, upsample)
        x = x + sd[f"{prefix}.noise.weight"] * noise
        return naive_lrelu(x + sd[f"{prefix}.activate.bias"].view(1, -1, 1, 1))

    def to_rgb(prefix: str, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return naive_modulated_conv(sd, f"{prefix}.conv", x, w, False, False) + sd[f"{prefix}.bias"]

    batch = w_plus.shape[0]
    x = sd["input.input"].repeat(batch, 1, 1, 1)
    x = styled("conv1", x, w_plus[:, 0], noises[0], upsample=False)
    rgb = to_rgb("to_rgb1", x, w_plus[:, 1])
    n_stages = sum(1 for k in sd if re.fullmatch(r"to_rgbs\.\d+\.bias", k))
    for s in range(n_stages):
        i = 2 * s + 1
        x = styled(f"convs.{2 * s}", x, w_plus[:, i], noises[i], upsample=True)
        x = styled(f"convs.{2 * s + 1}", x, w_plus[:, i + 1], noises[i + 1], upsample=False)
        skip = naive_fir(F.pad(zero_insert(rgb), [2, 1, 2, 1]), blur_kernel(4.0))
        rgb = to_rgb(f"to_rgbs.{s}", x, w_plus[:, i + 2]) + skip
    return rgb


def naive_mapping(sd: dict, z: torch.Tensor, lr_mul: float = 0.01) -> torch.Tensor:
    x = z / torch.sqrt((z**2).mean(dim=1, keepdim=True) + 1e-8)
    layer = 1
    while f"style.{layer}.weight" in sd:
        weight, bias = sd[f"style.{layer}.weight"], sd[f"style.{layer}.bias"]
        x = naive_lrelu(x @ weight.T * (lr_mul / math.sqrt(weight.shape[1])) + bias * lr_mul)
        layer += 1
    return x


def test_matches_naive_reference_from_z() -> None:
    generator = toy_generator()
    sd = generator.state_dict()
    z = torch.randn(2, TOY["style_dim"])
    noises = [sd[f"noises.noise_{i}"] for i in range(generator.num_layers)]
    with torch.no_grad():
        image, latent = generator([z], randomize_noise=False, return_latents=True)
        w = naive_mapping(sd, z)
        expected = naive_synthesis(sd, w[:, None].repeat(1, generator.n_latent, 1), noises)
    assert image.shape == (2, 3, 32, 32)
    torch.testing.assert_close(latent[:, 0], w, atol=1e-5, rtol=0)
    assert (image - expected).abs().max().item() < 1e-4
    assert image.std() > 0.1  # not a degenerate comparison


def test_matches_naive_reference_from_w_plus_with_given_noise() -> None:
    generator = toy_generator(seed=1)
    sd = generator.state_dict()
    w_plus = torch.randn(3, generator.n_latent, TOY["style_dim"])
    noises = generator.make_noise()
    with torch.no_grad():
        image, _ = generator([w_plus], input_is_latent=True, noise=noises)
        expected = naive_synthesis(sd, w_plus, noises)
    assert (image - expected).abs().max().item() < 1e-4


def test_upfirdn2d_downsampling_and_cropping() -> None:
    x = torch.randn(1, 2, 8, 8)
    k = blur_kernel(1.0)
    out = upfirdn2d(x, k, down=2, pad=(1, 1))
    expected = naive_fir(F.pad(x, [1, 1, 1, 1]), k)[..., ::2, ::2]
    torch.testing.assert_close(out, expected)
    cropped = upfirdn2d(x, k, pad=(-1, 2))
    torch.testing.assert_close(cropped, naive_fir(F.pad(x, [-1, 2, -1, 2]), k))


# --------------------------------------------------------------------------- forward contract


def test_stored_noise_is_deterministic_and_random_noise_is_not() -> None:
    generator = toy_generator()
    z = [torch.randn(1, TOY["style_dim"])]
    with torch.no_grad():
        a, _ = generator(z, randomize_noise=False)
        b, _ = generator(z, randomize_noise=False)
        c, _ = generator(z, randomize_noise=True)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3


def test_batching_does_not_change_a_sample() -> None:
    generator = toy_generator()
    w_plus = torch.randn(3, generator.n_latent, TOY["style_dim"])
    with torch.no_grad():
        batched, _ = generator([w_plus], input_is_latent=True, randomize_noise=False)
        single, _ = generator([w_plus[1:2]], input_is_latent=True, randomize_noise=False)
    torch.testing.assert_close(batched[1:2], single, atol=1e-5, rtol=1e-5)


def test_return_features_in_the_same_pass() -> None:
    generator = toy_generator()
    calls = []
    generator.input.register_forward_hook(lambda *_: calls.append(1))
    last_conv = []
    generator.convs[-1].register_forward_hook(lambda _m, _i, out: last_conv.append(out))
    z = [torch.randn(2, TOY["style_dim"])]
    with torch.no_grad():
        plain, _ = generator(z, randomize_noise=False)
        calls.clear()
        image, latent, features = generator(z, randomize_noise=False, return_features=True)
    assert len(calls) == 1
    assert latent is None
    torch.testing.assert_close(image, plain)
    assert sorted(features) == [4, 8, 16, 32]
    for res, feature in features.items():
        assert feature.shape == (2, generator.channels[res], res, res)
    assert torch.equal(features[32], last_conv[-1])


def test_style_mixing_and_truncation() -> None:
    generator = toy_generator()
    z1, z2 = torch.randn(2, TOY["style_dim"]), torch.randn(2, TOY["style_dim"])
    with torch.no_grad():
        _, latent = generator([z1, z2], inject_index=3, return_latents=True)
        w1, w2 = generator.get_latent(z1), generator.get_latent(z2)
        mean = generator.mean_latent(256)
        _, truncated = generator([z1], truncation=0.5, truncation_latent=mean, return_latents=True)
    torch.testing.assert_close(latent[:, :3], w1[:, None].expand(2, 3, -1))
    torch.testing.assert_close(latent[:, 3:], w2[:, None].expand(2, generator.n_latent - 3, -1))
    torch.testing.assert_close(truncated[:, 0], mean + 0.5 * (w1 - mean))


def test_bad_forward_arguments_raise_value_error() -> None:
    generator = toy_generator()
    with pytest.raises(ValueError, match="truncation_latent"):
        generator([torch.randn(1, 16)], truncation=0.7)
    with pytest.raises(ValueError, match="8 latents"):
        generator([torch.randn(1, 5, 16)], input_is_latent=True)
    with pytest.raises(ValueError, match="noise"):
        generator([torch.randn(1, 16)], noise=[None])
    with pytest.raises(ValueError, match="size"):
        Generator(48)


def test_helpers() -> None:
    generator = toy_generator()
    assert [tuple(n.shape) for n in generator.make_noise()] == [
        tuple(getattr(generator.noises, f"noise_{i}").shape) for i in range(generator.num_layers)
    ]
    with torch.no_grad():
        a = generator.mean_latent(100, generator=torch.Generator().manual_seed(3))
        b = generator.mean_latent(100, generator=torch.Generator().manual_seed(3))
    assert a.shape == (1, TOY["style_dim"])
    assert torch.equal(a, b)


def test_bf16_forward_is_close_to_fp32() -> None:
    generator = toy_generator()
    w_plus = torch.randn(2, generator.n_latent, TOY["style_dim"])
    with torch.no_grad():
        reference, _ = generator([w_plus], input_is_latent=True, randomize_noise=False)
        image, _ = generator.to(torch.bfloat16)(
            [w_plus], input_is_latent=True, randomize_noise=False
        )
    assert image.dtype == torch.bfloat16
    relative = (image.float() - reference).abs().mean() / reference.abs().mean()
    assert relative < 0.05


# --------------------------------------------------------------------------- checkpoints


def test_load_generator_from_path_is_strict_and_exact(tmp_path: Path) -> None:
    generator = toy_generator(size=64, channel_multiplier=1)
    latent_avg = torch.randn(TOY["style_dim"])
    path = tmp_path / "stylegan2.pt"
    torch.save({"g_ema": generator.state_dict(), "latent_avg": latent_avg}, path)
    loaded, loaded_avg = load_generator(path)
    assert not loaded.training
    assert (loaded.size, loaded.channels) == (64, generator.channels)
    torch.testing.assert_close(loaded_avg, latent_avg)
    w_plus = torch.randn(1, generator.n_latent, TOY["style_dim"])
    with torch.no_grad():
        expected, _ = generator([w_plus], input_is_latent=True, randomize_noise=False)
        image, _ = loaded([w_plus], input_is_latent=True, randomize_noise=False)
    assert torch.equal(image, expected)


def test_load_generator_without_latent_avg_returns_none() -> None:
    generator, latent_avg = load_generator({"g_ema": toy_generator().state_dict()})
    assert latent_avg is None
    assert generator.n_latent == 8


def test_load_generator_rejects_bad_checkpoints(tmp_path: Path) -> None:
    state = toy_generator().state_dict()
    with pytest.raises(ValueError, match="no 'g_ema' key"):
        load_generator({"generator": state})
    with pytest.raises(ValueError, match="load_decoder"):
        load_generator({"state_dict": {"decoder.input.input": torch.zeros(1)}})
    bad_shape = dict(state)
    bad_shape["conv1.conv.modulation.weight"] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match=r"conv1\.conv\.modulation\.weight"):
        load_generator({"g_ema": bad_shape})
    missing = {k: v for k, v in state.items() if k != "noises.noise_3"}
    with pytest.raises(ValueError, match="missing: noises.noise_3"):
        load_generator({"g_ema": missing})
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        load_generator(garbage)
    with pytest.raises(ValueError, match="no such file"):
        load_generator(tmp_path / "absent.pt")


def test_rendering_stops_at_max_resolution_with_the_same_features() -> None:
    import torch

    from shared.models.stylegan2 import Generator

    torch.manual_seed(0)
    generator = Generator(64, style_dim=32, n_mlp=2, channel_multiplier=1,
                          channel_scale=1 / 16).eval()
    w = torch.randn(2, generator.n_latent, 32)
    with torch.no_grad():
        full, _, full_features = generator([w], input_is_latent=True, randomize_noise=False,
                                           return_features=True)
        part, _, part_features = generator([w], input_is_latent=True, randomize_noise=False,
                                           return_features=True, max_resolution=16)
    assert full.shape[-1] == 64 and part.shape[-1] == 16
    assert sorted(part_features) == [4, 8, 16] and sorted(full_features) == [4, 8, 16, 32, 64]
    for resolution, feature in part_features.items():
        assert torch.equal(feature, full_features[resolution])
