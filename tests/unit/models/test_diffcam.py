from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from shared.models.checkpoints import count_parameters
from shared.models.diffcam import DiffCam, load_diffcam
from shared.models.maresunet import MAResUNet

TOY = {"num_class": 5, "base_width": 8, "layers": (1, 1, 2, 1)}


def _toy(seed: int = 0, **overrides) -> DiffCam:
    torch.manual_seed(seed)
    return DiffCam(**{**TOY, **overrides}).eval()


def _pair(batch: int, size: tuple[int, int] = (64, 64), seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    inverted = torch.rand(batch, 3, *size, generator=generator) * 2 - 1
    manipulated = inverted.clone()
    manipulated[:, :, : size[0] // 2, : size[1] // 2] += 0.8  # a local "edit"
    return torch.cat([inverted, manipulated.clamp(-1, 1)], dim=1)


def test_full_size_layout_matches_sdea_keys(official_keys) -> None:
    with torch.device("meta"):
        net = DiffCam(num_class=17)
    state = net.state_dict()
    expected = official_keys("sdea_diffcam_17.json")
    assert len(state) == 626
    assert list(state) == list(expected)
    assert {k: list(v.shape) for k, v in state.items()} == expected
    assert count_parameters(net) == 42_534_993
    assert count_parameters(net.shared) == 13_012_032
    assert count_parameters(net.classifier) == 29_488_128
    assert count_parameters(net.fc) == 34_833
    assert net.target_layer is net.classifier[13]


def test_strict_load_of_sdea_layout(official_keys, tmp_path) -> None:
    state = {}
    for key, shape in official_keys("sdea_diffcam_17.json").items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        else:
            state[key] = torch.full(shape, 0.5) if "running_var" in key else torch.zeros(shape)
    state["fc.bias"] = torch.arange(17.0)
    net = load_diffcam(state)
    assert (net.num_class, net.base_width, net.layers, net.layer3_split) == (
        17,
        64,
        (3, 4, 23, 3),
        10,
    )
    assert torch.equal(net.fc.bias, torch.arange(17.0))
    assert not net.training


def test_loader_infers_num_class_and_toy_depths(tmp_path) -> None:
    net = _toy(num_class=7)
    path = tmp_path / "diff_cam_weight.pt"
    torch.save(net.state_dict(), path)
    loaded = load_diffcam(path)
    assert loaded.num_class == 7
    assert (loaded.base_width, loaded.layers) == (8, (1, 1, 2, 1))
    x = _pair(2)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


def test_loader_rejects_other_files(tmp_path) -> None:
    with pytest.raises(ValueError, match="Diff-CAM"):
        load_diffcam(MAResUNet(base_width=8).state_dict())
    with pytest.raises(ValueError, match="expected a path or a checkpoint dict"):
        load_diffcam([1, 2, 3])
    state = _toy().state_dict()
    state["classifier.0.conv1.weight"] = torch.zeros(1, 1, 1, 1)
    with pytest.raises(ValueError, match="do not match"):
        load_diffcam(state)
    path = tmp_path / "not_weights.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(ValueError):
        load_diffcam(path)


def test_forward_logits_on_non_square_input() -> None:
    net = _toy()
    with torch.no_grad():
        logits = net(_pair(3, (64, 96)))
        single = net(_pair(1, (96, 64)))
    assert logits.shape == (3, 5)
    assert single.shape == (1, 5)
    with pytest.raises(ValueError, match="x6"):
        net(torch.zeros(1, 3, 64, 64))


def test_cam_matches_hand_computed_grad_cam() -> None:
    net = _toy()
    x = _pair(2, (64, 96))
    targets = [1, 3]
    with torch.no_grad():
        delta = net.shared(x[:, 3:]) - net.shared(x[:, :3])
        activation = net.classifier[:-1](delta)  # layer4 output A
        # logits = fc(mean_hw A) ⇒ ∂logit_t/∂A_c = W[t, c] / (h·w) everywhere.
        weights = net.fc.weight[targets] / activation[0, 0].numel()
        cam = F.relu((weights[:, :, None, None] * activation).sum(1, keepdim=True))
        cam = F.interpolate(cam, size=(64, 96), mode="bilinear", align_corners=False)[:, 0]
        low = cam.flatten(1).amin(1)[:, None, None]
        high = cam.flatten(1).amax(1)[:, None, None]
        expected = (cam - low) / (high - low)
    got = net.cam(x, targets)
    assert got.shape == (2, 64, 96)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert got.min() >= 0 and got.max() <= 1


def test_batched_cam_equals_per_item_cam() -> None:
    net = _toy()
    x = _pair(3, (64, 96), seed=3)
    targets = torch.tensor([0, 2, 4])
    batched = net.cam(x, targets)
    single = torch.cat([net.cam(x[i : i + 1], int(targets[i])) for i in range(3)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)
    assert torch.equal(net.cam(x, 2), net.cam(x, [2, 2, 2]))


def test_cam_works_under_inference_mode_and_no_grad_without_touching_parameters() -> None:
    net = _toy()
    net.train()
    x = _pair(2)
    reference = net.cam(x, [1, 2])
    assert net.training  # mode restored
    with torch.inference_mode():
        x_inf = x.clone()
        inside_inference = net.cam(x_inf, torch.tensor([1, 2]))
    with torch.no_grad():
        inside_no_grad = net.cam(x, [1, 2])
    for got in (inside_inference, inside_no_grad):
        torch.testing.assert_close(got, reference, atol=1e-6, rtol=0)
        assert not got.requires_grad
    assert all(p.grad is None for p in net.parameters())
    assert all(p.requires_grad for p in net.parameters())


def test_all_zero_cam_gives_zeros_not_nan() -> None:
    net = _toy()
    with torch.no_grad():
        net.fc.weight.zero_()
    cam = net.cam(_pair(2), 0)
    assert torch.isfinite(cam).all()
    assert torch.equal(cam, torch.zeros_like(cam))


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        (5, r"\[0, 4\]"),
        ([0, 1, 2], "1 or 2"),
        (torch.tensor([0.0, 1.0]), "integer"),
        ([-1, 0], r"\[0, 4\]"),
    ],
)
def test_cam_rejects_bad_targets(targets, message) -> None:
    with pytest.raises(ValueError, match=message):
        _toy().cam(_pair(2, (32, 32)), targets)


def test_toy_split_and_validation() -> None:
    assert DiffCam(**TOY).layer3_split == 1
    with pytest.raises(ValueError, match="layer3_split"):
        DiffCam(**TOY, layer3_split=2)
    with pytest.raises(ValueError, match="layers"):
        DiffCam(num_class=3, base_width=8, layers=(1, 1, 1, 1))
