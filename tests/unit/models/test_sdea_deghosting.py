"""SDEA deghosting network: official layout, strict loading, forward, and the "sdea" suppressor."""

from __future__ import annotations

import re

import pytest
import torch

from shared.blend.suppressor import SUPPRESSOR_NAMES, SdeaSuppressor, build_suppressor
from shared.core.edits import parse_edit
from shared.core.errors import ModelUnavailable
from shared.editing.bundle import load_bundle
from shared.editing.pipeline import EditPipeline, PipelineConfig
from shared.models import stylegan2 as sg2
from shared.models.sdea_deghosting import (
    Deghosting,
    StyleGANv2Generator,
    load_deghosting,
    mmgen_generator_state_dict,
)
from tests.model_layouts import official_keys
from tests.unit.core.checkpoints import write_weights_dir

TOY = {"in_size": 16, "out_size": 64, "style_dim": 16, "channel_scale": 1 / 16, "num_rrdbs": 1,
       "num_mlps": 2}


@pytest.fixture(scope="module")
def official_keys_json() -> dict[str, list[int]]:
    """{key: shape} of rosinality's Generator(1024) ``g_ema`` (from the design key files)."""
    return official_keys("stylegan2_1024_config-f_g_ema.json")


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def full() -> Deghosting:
    with torch.device("meta"):
        return Deghosting(in_size=128, out_size=1024)


@pytest.fixture(scope="module")
def toy() -> Deghosting:
    torch.manual_seed(0)
    return Deghosting(**TOY).eval()


def test_full_parameter_counts_match_reference(full):
    fcn = full.FCN
    assert _params(full) == 174_196_615
    assert _params(fcn) == 143_826_555
    assert _params(full.generator) == 30_370_060
    assert _params(fcn.encoder[0]) == 16_733_184  # RRDBNet
    assert sum(_params(fcn.encoder[i]) for i in range(1, 6)) == 22_418_432  # down blocks
    assert _params(fcn.encoder[6]) == 77_866_496  # latent head, Linear(8192, 18*512)
    assert fcn.encoder[6][3].weight.shape == (18 * 512, 8192)
    assert _params(fcn.fusion_out) == 24_775_424
    assert _params(fcn.fusion_skip) == 76_536
    assert _params(fcn.decoder) == 1_956_483
    assert all(not p.requires_grad for p in full.generator.parameters())
    assert all(p.requires_grad for p in fcn.parameters())


def test_full_key_names_match_official_layout(full):
    sd = full.state_dict()
    assert len(sd) == 925
    assert sum(k.startswith("FCN.") for k in sd) == 754
    assert sum(k.startswith("generator.") for k in sd) == 171
    # Names and shapes read from the official deghosting.py, stylegan2.py and modules.py.
    expected = {
        "FCN.encoder.0.conv_first.weight": (64, 3, 3, 3),
        "FCN.encoder.0.body.22.rdb3.conv5.weight": (64, 64 + 4 * 32, 3, 3),
        "FCN.encoder.0.conv_body.bias": (64,),
        "FCN.encoder.0.conv_up.weight": (256, 64, 3, 3),
        "FCN.encoder.1.0.weight": (512, 256, 3, 3),
        "FCN.encoder.5.2.bias": (512,),
        "FCN.encoder.6.0.weight": (512, 512, 3, 3),
        "FCN.encoder.6.3.weight": (9216, 8192),
        "FCN.fusion_out.5.weight": (256, 512, 3, 3),
        "FCN.fusion_skip.0.weight": (3, 515, 3, 3),
        "FCN.fusion_skip.5.weight": (3, 259, 3, 3),
        "FCN.decoder.0.upsample_conv.weight": (512, 256, 3, 3),
        "FCN.decoder.2.upsample_conv.weight": (128, 128, 3, 3),
        "FCN.decoder.3.0.weight": (64, 64, 3, 3),
        "FCN.decoder.3.2.weight": (3, 64, 3, 3),
        "generator.style_mapping.1.linear.weight_orig": (512, 512),
        "generator.style_mapping.8.bias": (512,),
        "generator.constant_input.input": (1, 512, 4, 4),
        "generator.conv1.conv.weight_orig": (1, 512, 512, 3, 3),
        "generator.conv1.conv.style_modulation.linear.weight_orig": (512, 512),
        "generator.conv1.conv.style_modulation.bias": (512,),
        "generator.conv1.noise_injector.weight": (1,),
        "generator.conv1.activate.bias": (512,),
        "generator.to_rgb1.conv.weight_orig": (1, 3, 512, 1, 1),
        "generator.to_rgb1.bias": (1, 3, 1, 1),
        "generator.convs.0.conv.blur.kernel": (4, 4),
        "generator.convs.14.conv.weight_orig": (1, 32, 64, 3, 3),
        "generator.to_rgbs.7.upsample.kernel": (4, 4),
        "generator.injected_noise_0": (1, 1, 4, 4),
        "generator.injected_noise_16": (1, 1, 1024, 1024),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key
    # Equalized-lr weights are stored as ``weight_orig``; the only plain ``weight`` is the
    # noise strength.
    generator_weights = [k for k in sd if k.startswith("generator.") and k.endswith(".weight")]
    assert len(generator_weights) == 17
    assert all(k.endswith(".noise_injector.weight") for k in generator_weights)
    assert not any(re.search(r"\.(modulation|noise|input)\.", k) for k in sd)
    assert "generator.to_rgb1.upsample.kernel" not in sd
    assert "generator.conv1.conv.blur.kernel" not in sd


def test_latent_bank_converts_from_rosinality(official_keys_json):
    """The 171 rosinality g_ema keys map one to one onto the mmgen latent bank (same shapes)."""
    renamed = mmgen_generator_state_dict({k: torch.empty(0) for k in official_keys_json})
    with torch.device("meta"):
        bank = StyleGANv2Generator(1024)
    sd = bank.state_dict()
    assert set(renamed) == set(sd)
    for old, new in zip(official_keys_json, renamed, strict=True):
        assert tuple(official_keys_json[old]) == tuple(sd[new].shape), (old, new)


def test_latent_bank_computes_rosinality_synthesis():
    torch.manual_seed(1)
    ref = sg2.Generator(32, style_dim=16, n_mlp=2, channel_multiplier=2, channel_scale=1 / 16)
    bank = StyleGANv2Generator(32, 16, 2, channel_scale=1 / 16)
    bank.load_state_dict(mmgen_generator_state_dict(ref.state_dict()), strict=True)
    w = torch.randn(2, ref.n_latent, 16)
    expected, _ = ref([w], input_is_latent=True, randomize_noise=False)
    noise = bank.injected_noise()
    out = bank.conv1(bank.constant_input(2), w[:, 0], noise=noise[0])
    skip = bank.to_rgb1(out, w[:, 1])
    for s, to_rgb in enumerate(bank.to_rgbs):
        i = 2 * s + 1
        out = bank.convs[2 * s](out, w[:, i], noise=noise[i])
        out = bank.convs[2 * s + 1](out, w[:, i + 1], noise=noise[i + 1])
        skip = to_rgb(out, w[:, i + 2], skip)
    torch.testing.assert_close(skip, expected)


def test_toy_forward_shape_and_determinism(toy):
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        out = toy(x)
        again = toy(x)
    assert out.shape == (2, 3, 64, 64)
    assert torch.isfinite(out).all()
    assert torch.equal(out, again)  # fixed injected noise: deterministic
    with pytest.raises(ValueError, match="lq"):
        toy(torch.zeros(1, 3, 32, 32))


def test_toy_forward_uses_encoder_fusion(toy):
    """Changing the input changes the output (the composite reaches the decoder and the bank)."""
    torch.manual_seed(2)
    a, b = torch.rand(2, 1, 3, 16, 16).unbind(0)
    with torch.no_grad():
        assert not torch.allclose(toy(a), toy(b))


def test_strict_load_from_file_infers_toy_config(toy, tmp_path):
    path = tmp_path / "deghosting.pt"
    torch.save(toy.state_dict(), path)
    net = load_deghosting(path)
    assert net.config == TOY
    assert not net.training
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(net(x), toy(x))


def test_load_rejects_wrong_files(toy, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="path_or_state_dict"):
        load_deghosting(junk)
    with pytest.raises(ValueError, match="not an SDEA deghosting state dict"):
        load_deghosting({"firstconv.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="no such file"):
        load_deghosting(tmp_path / "missing.pt")
    sd = toy.state_dict()
    del sd["FCN.decoder.0.upsample_conv.bias"]
    with pytest.raises(ValueError, match="missing: FCN.decoder.0.upsample_conv.bias"):
        load_deghosting(sd)


def test_sdea_suppressor(toy):
    assert "sdea" in SUPPRESSOR_NAMES
    suppressor = build_suppressor("sdea", network=toy)
    assert isinstance(suppressor, SdeaSuppressor) and suppressor.name == "sdea"
    torch.manual_seed(3)
    original, edited = torch.rand(2, 1, 3, 48, 48).unbind(0)
    mask = torch.zeros(1, 1, 48, 48)
    mask[..., 10:30, 10:30] = 1
    out = suppressor(original, edited, mask)
    assert out.shape == (1, 3, 48, 48)
    assert out.min() >= 0 and out.max() <= 1
    composite = original * (1 - mask) + edited * mask
    x = torch.nn.functional.interpolate(composite, size=(16, 16), mode="area") * 2 - 1
    with torch.no_grad():
        expected = (toy(x) + 1) / 2
    expected = torch.nn.functional.interpolate(expected, size=(48, 48), mode="area").clamp(0, 1)
    torch.testing.assert_close(out, expected)
    at_out_size = suppressor(*(t.expand(-1, -1, 64, 64) for t in (original[..., :1, :1],
                                                                   edited[..., :1, :1],
                                                                   mask[..., :1, :1])))
    assert at_out_size.shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="network"):
        build_suppressor("sdea")
    with pytest.raises(ValueError, match="network"):
        SdeaSuppressor(torch.nn.Conv2d(3, 3, 1))


def test_official_bundle_loads_deghosting_and_pipeline_runs_sdea(toy, tmp_path):
    folder = write_weights_dir(tmp_path / "weights")
    without = load_bundle(str(folder), None, "cpu")
    assert without.deghosting_net is None
    assert any("deghosting.pt" in note for note in without.notes)
    with pytest.raises(ModelUnavailable, match="deghosting.pt"):
        EditPipeline(without, PipelineConfig(suppressor="sdea")).suppressor("sdea")

    torch.save(toy.state_dict(), folder / "deghosting.pt")
    bundle = load_bundle(str(folder), None, "cpu")
    assert isinstance(bundle.deghosting_net, Deghosting)
    assert bundle.deghosting_net.config == TOY
    assert not any(p.requires_grad for p in bundle.deghosting_net.parameters())
    pipeline = EditPipeline(bundle, PipelineConfig(suppressor="sdea", output_size=96))
    torch.manual_seed(4)
    out = pipeline(torch.rand(2, 3, 96, 96), [[parse_edit("smile=+2")], [parse_edit("smile=-2")]])
    assert out.result.shape == (2, 3, 96, 96)
    assert out.result.min() >= 0 and out.result.max() <= 1
