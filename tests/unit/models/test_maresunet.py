from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from shared.models.checkpoints import count_parameters
from shared.models.maresunet import (
    CAM_Module,
    MAResUNet,
    PAM_Module,
    load_maresunet,
    maresunet_checkpoint,
    residual_refine,
    zero_init_head,
)


def _toy(seed: int = 0, **kwargs: int) -> MAResUNet:
    torch.manual_seed(seed)
    net = MAResUNet(base_width=8, **kwargs)
    with torch.no_grad():  # non-zero gammas so that the attention paths matter
        for name, p in net.named_parameters():
            if name.endswith("gamma"):
                p.fill_(0.5)
    return net.eval()


def test_full_size_layout_matches_official_keys(official_keys) -> None:
    with torch.device("meta"):
        net = MAResUNet(num_classes=3)
    state = net.state_dict()
    expected = official_keys("maresunet_3out.json")
    assert len(state) == 370
    assert list(state) == list(expected)
    assert {k: list(v.shape) for k, v in state.items()} == expected
    assert count_parameters(net) == 26_275_643
    encoder = [net.firstconv, net.firstbn, net.encoder1, net.encoder2, net.encoder3, net.encoder4]
    assert sum(count_parameters(m) for m in encoder) == 21_284_672


def test_param_count_per_output_channel() -> None:
    with torch.device("meta"):
        counts = [count_parameters(MAResUNet(num_classes=n)) for n in (1, 5, 6)]
    assert counts == [26_275_065, 26_276_221, 26_276_510]


def test_toy_width_keeps_key_names() -> None:
    with torch.device("meta"):
        full = MAResUNet()
    toy = MAResUNet(base_width=8)
    assert list(toy.state_dict()) == list(full.state_dict())
    assert count_parameters(toy) < count_parameters(full) / 50


def test_strict_load_of_official_layout(official_keys) -> None:
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in official_keys("maresunet_3out.json").items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        else:
            state[key] = torch.rand(shape, generator=generator)
    net = load_maresunet(state)
    assert not net.training
    assert (net.num_classes, net.num_channels, net.base_width) == (3, 3, 64)
    loaded = net.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())

    state.pop("attention2.CAM.gamma")
    with pytest.raises(ValueError, match="attention2.CAM.gamma"):
        load_maresunet(state)


def test_facedit_checkpoint_roundtrip(tmp_path) -> None:
    net = _toy(num_classes=3)
    path = tmp_path / "suppressor.pt"
    torch.save(maresunet_checkpoint(net, step=12), path)
    loaded = load_maresunet(path)
    assert loaded.config == {"num_classes": 3, "num_channels": 3, "base_width": 8,
                             "composite": "soft"}
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


@pytest.mark.parametrize(
    "bad",
    [
        {"encoder.weight": torch.zeros(1)},
        {"model": {}, "config": {"num_classes": 3}},
        [torch.zeros(3)],
    ],
)
def test_loader_rejects_other_files(bad) -> None:
    with pytest.raises(ValueError):
        load_maresunet(bad)


@pytest.mark.parametrize("size", [(64, 96), (96, 64), (32, 160)])
def test_non_square_inputs(size) -> None:
    net = _toy()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        out = net(x)
    assert out.shape == (2, 3, *size)
    assert torch.isfinite(out).all()


def test_non_multiple_of_32_is_reflect_padded_and_cropped() -> None:
    net = _toy()
    x = torch.randn(1, 3, 70, 50)
    with torch.no_grad():
        out = net(x)
        padded = net(F.pad(x, (0, 14, 0, 26), mode="reflect"))
    assert out.shape == (1, 3, 70, 50)
    torch.testing.assert_close(out, padded[..., :70, :50])
    with torch.no_grad():
        tiny = net(torch.randn(1, 3, 10, 7))  # too small to reflect: replicate padding
    assert tiny.shape == (1, 3, 10, 7)


def _pam_reference(module: PAM_Module, x: torch.Tensor) -> torch.Tensor:
    # Dense form: o_n = Σ_j (1 + q̂_n·k̂_j) v_j / Σ_j (1 + q̂_n·k̂_j), then x + γ·o.
    b, c, h, w = x.shape
    q = F.normalize(module.query_conv(x).flatten(2), dim=1)
    k = F.normalize(module.key_conv(x).flatten(2), dim=1)
    v = module.value_conv(x).flatten(2)
    sim = 1 + torch.einsum("bcn,bcm->bnm", q, k)  # (B, N, N)
    o = torch.einsum("bnm,bcm->bcn", sim, v) / sim.sum(-1)[:, None, :]
    return x + module.gamma * o.reshape(b, c, h, w)


def _cam_reference(module: CAM_Module, x: torch.Tensor) -> torch.Tensor:
    flat = x.flatten(2)
    energy = flat @ flat.transpose(1, 2)
    attention = torch.softmax(energy.amax(-1, keepdim=True) - energy, dim=-1)
    return x + module.gamma * (attention @ flat).reshape(x.shape)


def test_attention_modules_on_non_square_maps() -> None:
    torch.manual_seed(1)
    pam, cam = PAM_Module(16), CAM_Module()
    with torch.no_grad():
        pam.gamma.fill_(0.7)
        cam.gamma.fill_(0.3)
        x = torch.randn(2, 16, 3, 5)
        torch.testing.assert_close(pam(x), _pam_reference(pam, x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(cam(x), _cam_reference(cam, x), atol=1e-5, rtol=1e-5)
        # Position attention is equivariant to transposing the map.
        xt = x.transpose(-1, -2).contiguous()
        torch.testing.assert_close(pam(xt), pam(x).transpose(-1, -2), atol=1e-5, rtol=1e-5)


def test_half_precision_attention_does_not_overflow() -> None:
    # 256² positions of values in [0, 2): a plain fp16 Σ_j x_j x_jᵀ or Σ_j v_j passes 65,504.
    torch.manual_seed(2)
    pam, cam = PAM_Module(32), CAM_Module()
    x = (torch.rand(1, 32, 256, 256) * 2).half().float()
    with torch.no_grad():
        pam.gamma.fill_(1.0)
        cam.gamma.fill_(1.0)
        flat = x.half().flatten(2)
        assert not torch.isfinite(torch.bmm(flat, flat.transpose(1, 2))).all()
        ref_p, ref_c = pam(x), cam(x)
        out_p, out_c = pam.half()(x.half()), cam.half()(x.half())
    assert out_p.dtype == out_c.dtype == torch.float16
    torch.testing.assert_close(out_p.float(), ref_p, atol=0.02, rtol=0.01)
    torch.testing.assert_close(out_c.float(), ref_c, atol=0.02, rtol=0.01)


def test_bfloat16_forward() -> None:
    net = _toy().to(torch.bfloat16)
    with torch.no_grad():
        out = net(torch.randn(1, 3, 32, 32, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16
    assert torch.isfinite(out.float()).all()


def test_zero_init_head_makes_residual_refine_the_identity() -> None:
    net = zero_init_head(_toy())
    x01 = torch.rand(2, 3, 64, 80)
    with torch.no_grad():
        out = residual_refine(net, x01)
    torch.testing.assert_close(out, x01, atol=1e-6, rtol=0)


def test_residual_refine_adds_the_network_output_and_clamps() -> None:
    net = _toy()
    with torch.no_grad():
        net.finalconv3.bias.fill_(5.0)  # pushes everything far above 1
        x01 = torch.rand(1, 3, 32, 32)
        out = residual_refine(net, x01)
        raw = net(x01 * 2 - 1)
    assert out.min() >= 0 and out.max() <= 1
    expected = ((x01 * 2 - 1 + raw + 1) / 2).clamp(0, 1)
    torch.testing.assert_close(out, expected)
    assert torch.allclose(out, torch.ones_like(out))


def test_input_validation() -> None:
    net = _toy()
    with pytest.raises(ValueError, match="x must have shape"):
        net(torch.randn(1, 4, 32, 32))
    with pytest.raises(ValueError, match="base_width"):
        MAResUNet(base_width=12)
    with pytest.raises(ValueError, match="x01"):
        residual_refine(net, torch.rand(3, 32, 32))


def test_mask_conditioned_residual_refine_feeds_the_mask_as_a_fourth_channel() -> None:
    torch.manual_seed(0)
    net = MAResUNet(num_classes=3, num_channels=4, base_width=8).eval()
    assert net.firstconv.weight.shape[1] == 4
    x01 = torch.rand(2, 3, 64, 64)
    mask = torch.zeros(2, 1, 64, 64)
    mask[..., 16:48, 16:48] = 1
    with torch.no_grad():
        with_mask = residual_refine(net, x01, mask)
        without = residual_refine(net, x01, torch.zeros_like(mask))
        expected = ((x01 * 2 - 1 + net(torch.cat([x01 * 2 - 1, mask * 2 - 1], 1)) + 1) / 2)
    torch.testing.assert_close(with_mask, expected.clamp(0, 1))
    assert not torch.allclose(with_mask, without)
    with pytest.raises(ValueError, match="mask-conditioned"):
        residual_refine(net, x01)
    with pytest.raises(ValueError, match="mask must have shape"):
        residual_refine(net, x01, mask[:, :, :32])
    with pytest.raises(ValueError, match="num_classes == num_channels"):
        residual_refine(MAResUNet(num_classes=3, num_channels=5, base_width=8), x01, mask)


def test_gate_limits_the_residual_and_suppressor_inputs_follow_the_composite() -> None:
    from shared.blend.suppressor import suppressor_inputs

    torch.manual_seed(0)
    net = MAResUNet(num_classes=3, base_width=8).eval()
    x01 = torch.rand(1, 3, 64, 64) * 0.5 + 0.25
    gate = torch.zeros(1, 1, 64, 64)
    gate[..., 10:30, 10:30] = 1
    with torch.no_grad():
        out = residual_refine(net, x01, gate=gate)
        free = residual_refine(net, x01)
    assert torch.equal(out[..., 40:, 40:], x01[..., 40:, 40:])
    torch.testing.assert_close(out[..., 10:30, 10:30], free[..., 10:30, 10:30])

    original, edited = torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :, 2], mask[..., :, 3], mask[..., :, 4] = 0.3, 0.5, 1.0
    composite, net_mask, gate = suppressor_inputs(net, original, edited, mask)  # soft
    torch.testing.assert_close(composite[0, 0, 0, :5], torch.tensor([0, 0, 0.3, 0.5, 1.0]))
    assert torch.equal(gate[0, 0, 0, :5], torch.tensor([0.0, 0, 1, 1, 1]))
    binary = MAResUNet(num_classes=3, base_width=8, composite="binary")
    composite, net_mask, gate = suppressor_inputs(binary, original, edited, mask)
    assert torch.equal(composite[0, 0, 0, :5], torch.tensor([0.0, 0, 0, 1, 1]))
    assert torch.equal(net_mask, gate) and torch.equal(gate[0, 0, 0, :5], composite[0, 0, 0, :5])
    with pytest.raises(ValueError, match="composite"):
        MAResUNet(base_width=8, composite="hard")


def test_composite_travels_in_facedit_checkpoints(tmp_path) -> None:
    net = MAResUNet(num_classes=3, base_width=8, composite="binary")
    torch.save(maresunet_checkpoint(net), tmp_path / "c.pt")
    assert load_maresunet(tmp_path / "c.pt").composite == "binary"
    assert load_maresunet(net.state_dict()).composite == "soft"  # official format: the default
