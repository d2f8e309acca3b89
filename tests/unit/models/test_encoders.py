"""pSp / e4e encoders: official key layout and size, the pSp/e4e relation, W+ with latent_avg,
and loading official-layout checkpoints (built here in small configurations)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from shared.models.encoders import (
    Encoder4Editing,
    GradualStyleEncoder,
    WPlusEncoder,
    load_decoder,
    load_encoder,
)
from shared.models.stylegan2 import Generator
from tests.model_layouts import layout, official_layout

TOY = {"n_styles": 8, "style_dim": 16, "input_size": 64, "channel_scale": 1 / 16}
TOY_DECODER = {"size": 32, "style_dim": 16, "n_mlp": 2, "channel_scale": 1 / 32}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Toy-sized ops run fastest on one thread, and don't fight parallel test workers for cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def randomized(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights and non-trivial BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.normal_(1.0, 0.1)
                m.bias.normal_(0.0, 0.1)
    return module.eval()


def toy_checkpoint(encoder_type: str = "Encoder4Editing", seed: int = 0, **opts: object) -> dict:
    """A pSp/e4e checkpoint in the official layout, small configuration."""
    torch.manual_seed(seed)
    cls = Encoder4Editing if encoder_type == "Encoder4Editing" else GradualStyleEncoder
    encoder = randomized(cls(**TOY), seed)
    decoder = Generator(**TOY_DECODER)
    state_dict = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    state_dict.update({f"decoder.{k}": v for k, v in decoder.state_dict().items()})
    return {
        "state_dict": state_dict,
        "latent_avg": torch.randn(TOY["n_styles"], TOY["style_dim"]),
        "opts": {"encoder_type": encoder_type, "start_from_latent_avg": True, **opts},
    }


def encoder_part(checkpoint: dict) -> dict:
    return {k[8:]: v for k, v in checkpoint["state_dict"].items() if k.startswith("encoder.")}


# --------------------------------------------------------------------------- layout


@pytest.mark.parametrize(
    ("cls", "file"),
    [
        (GradualStyleEncoder, "psp_encoder_ir_se50_1024.json"),
        (Encoder4Editing, "e4e_encoder_ir_se50_1024.json"),
    ],
)
def test_state_dict_layout_and_size_match_official(cls: type, file: str) -> None:
    with torch.device("meta"):
        encoder = cls(50, "ir_se", n_styles=18)
    assert layout(encoder) == official_layout(file)
    assert len(encoder.state_dict()) == 621
    assert sum(p.numel() for p in encoder.parameters()) == 267_136_704
    assert encoder.tap_indices == (6, 20, 23)
    assert [len(block.convs) // 2 for block in encoder.styles] == [4] * 3 + [5] * 4 + [6] * 11


def test_toy_input_size_sets_the_number_of_stride_2_convs() -> None:
    encoder = GradualStyleEncoder(**TOY)
    assert [len(block.convs) // 2 for block in encoder.styles] == [2] * 3 + [3] * 4 + [4]
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        codes = encoder.eval()(x)
    assert codes.shape == (2, TOY["n_styles"], TOY["style_dim"])


def test_e4e_codes_are_w0_plus_deltas_of_the_same_blocks() -> None:
    """With identical weights, e4e's layer i is pSp's layer 0 plus pSp's layer i (i >= 1)."""
    psp = randomized(GradualStyleEncoder(**TOY), seed=1)
    e4e = Encoder4Editing(**TOY).eval()
    e4e.load_state_dict(psp.state_dict())
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        independent, offsets = psp(x), e4e(x)
    torch.testing.assert_close(offsets[:, 0], independent[:, 0])
    torch.testing.assert_close(offsets[:, 1:], independent[:, :1] + independent[:, 1:])
    assert (independent[:, 1:] - independent[:, :1]).abs().max() > 1e-3


def test_bf16_forward_is_close_to_fp32() -> None:
    encoder = randomized(Encoder4Editing(**TOY), seed=2)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        reference = encoder(x)
        codes = encoder.to(torch.bfloat16)(x.bfloat16())
    assert codes.dtype == torch.bfloat16
    relative = (codes.float() - reference).abs().mean() / reference.abs().mean()
    assert relative < 0.05


def test_wrong_input_shape_names_the_expected_size() -> None:
    encoder = WPlusEncoder(GradualStyleEncoder(**TOY), torch.zeros(TOY["style_dim"]))
    with pytest.raises(ValueError, match=r"\(B, 3, 64, 64\)"):
        encoder(torch.zeros(1, 3, 256, 256))
    with pytest.raises(ValueError, match="x: expected"):
        encoder(torch.zeros(3, 64, 64))
    with pytest.raises(ValueError, match="latent_avg"):
        WPlusEncoder(GradualStyleEncoder(**TOY), torch.zeros(3, TOY["style_dim"]))


# --------------------------------------------------------------------------- loading


@pytest.mark.parametrize("encoder_type", ["Encoder4Editing", "GradualStyleEncoder"])
def test_load_encoder_adds_latent_avg_like_the_official_forward(
    encoder_type: str, tmp_path: Path
) -> None:
    checkpoint = toy_checkpoint(encoder_type)
    path = tmp_path / "encoder.pt"
    torch.save(checkpoint, path)
    model = load_encoder(path)
    assert isinstance(
        model.encoder, Encoder4Editing if encoder_type == "Encoder4Editing" else GradualStyleEncoder
    )
    assert not model.training and model.input_size == 64
    reference = (Encoder4Editing if encoder_type == "Encoder4Editing" else GradualStyleEncoder)(
        **TOY
    )
    reference.load_state_dict(encoder_part(checkpoint))
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        expected = reference.eval()(x) + checkpoint["latent_avg"].repeat(2, 1, 1)
        codes = model(x)
    assert codes.shape == (2, TOY["n_styles"], TOY["style_dim"])
    assert torch.equal(codes, expected)


def test_single_row_latent_avg_is_broadcast_and_flag_is_honoured() -> None:
    checkpoint = toy_checkpoint()
    row = torch.randn(TOY["style_dim"])
    model = load_encoder({**checkpoint, "latent_avg": row})
    assert torch.equal(model.latent_avg, row.expand(TOY["n_styles"], -1))
    no_avg = load_encoder(
        {**checkpoint, "opts": {**checkpoint["opts"], "start_from_latent_avg": False}}
    )
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(model(x) - no_avg(x), row.expand(1, TOY["n_styles"], -1))


def test_missing_latent_avg_is_computed_from_the_decoder_with_a_warning() -> None:
    checkpoint = toy_checkpoint()
    del checkpoint["latent_avg"]
    with pytest.warns(UserWarning, match="no latent_avg"):
        model = load_encoder(checkpoint)
    decoder = load_decoder(checkpoint)
    z = torch.randn(10_000, TOY["style_dim"], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = decoder.style(z).mean(0)
    torch.testing.assert_close(model.latent_avg, expected.expand(TOY["n_styles"], -1))


def test_load_decoder_returns_the_decoder_weights() -> None:
    checkpoint = toy_checkpoint(stylegan_size=32)
    decoder = load_decoder(checkpoint)
    assert isinstance(decoder, Generator) and decoder.size == 32 and not decoder.training
    expected = {k[8:]: v for k, v in checkpoint["state_dict"].items() if k.startswith("decoder.")}
    assert all(torch.equal(v, expected[k]) for k, v in decoder.state_dict().items())
    with pytest.raises(ValueError, match="size 1024"):
        load_decoder({**checkpoint, "opts": {"output_size": 1024}})


def test_encoder_type_comes_from_opts_or_argument() -> None:
    checkpoint = toy_checkpoint("GradualStyleEncoder")
    bare = {"state_dict": checkpoint["state_dict"], "latent_avg": checkpoint["latent_avg"]}
    with pytest.raises(ValueError, match="encoder_type"):
        load_encoder(bare)
    assert isinstance(load_encoder(bare, encoder_type="Encoder4Editing").encoder, Encoder4Editing)
    with pytest.warns(UserWarning, match="assuming GradualStyleEncoder"):
        model = load_encoder({**bare, "opts": {"output_size": 32}})
    assert isinstance(model.encoder, GradualStyleEncoder)
    with pytest.raises(ValueError, match="not supported"):
        load_encoder(bare, encoder_type="BackboneEncoderUsingLastLayerIntoW")


def test_input_nc_is_taken_from_the_weights() -> None:
    """pSp checkpoints for sketches/segmentation take other channel counts (SDEA's retry without
    input_layer.0.weight would silently leave a random stem instead)."""
    torch.manual_seed(0)
    encoder = GradualStyleEncoder(**TOY, input_nc=1)
    checkpoint = toy_checkpoint("GradualStyleEncoder", input_nc=3)
    checkpoint["state_dict"].update({f"encoder.{k}": v for k, v in encoder.state_dict().items()})
    with pytest.warns(UserWarning, match="input_nc=3"):
        model = load_encoder(checkpoint)
    assert model.encoder.input_nc == 1
    assert model(torch.zeros(1, 1, 64, 64)).shape == (1, TOY["n_styles"], TOY["style_dim"])
    with pytest.raises(ValueError, match=r"\(B, 1, 64, 64\)"):
        model(torch.zeros(1, 3, 64, 64))
    del checkpoint["state_dict"]["encoder.input_layer.0.weight"]
    with pytest.raises(ValueError, match="input_layer.0.weight"):
        load_encoder(checkpoint)


def test_bad_checkpoints_raise_value_error(tmp_path: Path) -> None:
    checkpoint = toy_checkpoint()
    with pytest.raises(ValueError, match="load_generator"):
        load_encoder({"g_ema": {}, "latent_avg": torch.zeros(16)})
    with pytest.raises(ValueError, match="no 'encoder.' keys"):
        load_encoder({"state_dict": {"decoder.input.input": torch.zeros(1)}})
    wrong = dict(checkpoint["state_dict"])
    wrong["encoder.styles.2.linear.weight"] = torch.zeros(4, 4)
    with pytest.raises(ValueError, match=r"styles\.2\.linear\.weight"):
        load_encoder({**checkpoint, "state_dict": wrong})
    extra = {**checkpoint["state_dict"], "encoder.extra.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match="unexpected: extra.weight"):
        load_encoder({**checkpoint, "state_dict": extra})
    with pytest.raises(ValueError, match="latent_avg"):
        load_encoder({**checkpoint, "latent_avg": torch.zeros(5)})
    garbage = tmp_path / "garbage.pt"
    garbage.write_text("hello")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        load_encoder(garbage)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_encoder(checkpoint)  # the well-formed original loads without warnings
