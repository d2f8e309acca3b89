from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from facedit.cli import app
from shared.blend.suppressor import MAResUNetSuppressor
from shared.editing.weights import check_file
from shared.metrics import ssim
from shared.models.maresunet import load_maresunet, residual_refine
from shared.train.pairs import read_manifest
from shared.train.suppressor import (
    CHECKPOINT_FORMAT,
    TrainConfig,
    band_weights,
    binary_composites,
    calibrate_batch_norm,
    colour_jittered,
    frozen_bn_train_mode,
    load_pair_images,
    load_pair_masks,
    split_by_source,
    ssim_differentiable,
    suppressor_loss,
    train_suppressor,
)


def _config(pairs: Path, out: Path, **changes) -> TrainConfig:
    values = dict(pairs=str(pairs), out=str(out), size=64, steps=6, batch=2, base_width=8,
                  device="cpu", val_every=3, save_every=100, val_fraction=0.25, lr=1e-3)
    values.update(changes)
    return TrainConfig(**values)


def test_differentiable_ssim_matches_the_metric() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=generator)
    y = (x + 0.1 * torch.rand(2, 3, 32, 32, generator=generator)).clamp(0, 1)
    expected = float(ssim(x, y).mean())
    assert float(ssim_differentiable(x.double(), y.double())) == pytest.approx(expected, abs=1e-9)
    x.requires_grad_(True)
    ssim_differentiable(x, y).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_band_weighted_charbonnier_loss() -> None:
    masks = torch.zeros(1, 1, 16, 16, dtype=torch.uint8)
    masks[..., 6:8, 6:8] = 255
    weights = band_weights(masks, 10.0, radius=2)
    assert weights[0, 0, 7, 7] == 11 and weights[0, 0, 4, 4] == 11 and weights[0, 0, 0, 0] == 1
    target = torch.zeros(1, 3, 16, 16)
    inside, outside = target.clone(), target.clone()
    inside[..., 7, 7] = 0.5
    outside[..., 0, 0] = 0.5
    # The same error costs more inside the band than outside it; eps = 0 is plain L1.
    assert suppressor_loss(inside, target, 0.0, weights) > suppressor_loss(
        outside, target, 0.0, weights)
    assert float(suppressor_loss(inside, target, 0.0)) == pytest.approx(0.5 / 256)
    assert suppressor_loss(inside, target, 0.0, eps=0.01) < suppressor_loss(inside, target, 0.0)


def test_frozen_batch_norm_makes_training_and_evaluation_agree() -> None:
    from shared.models.maresunet import MAResUNet

    torch.manual_seed(0)
    net = MAResUNet(num_classes=3, base_width=8)
    images = (torch.rand(6, 3, 32, 32) * 255).to(torch.uint8)
    calibrate_batch_norm(net, images, 3, torch.device("cpu"))
    assert float(net.firstbn.running_mean.abs().sum()) > 0
    x = images[:2].float() / 255 * 2 - 1
    with torch.no_grad():
        evaluated = net(x)
        frozen_bn_train_mode(net)
        assert net.training and not net.firstbn.training
        for module in net.modules():  # dropout aside, training must now compute eval's function
            if isinstance(module, torch.nn.Dropout2d):
                module.eval()
        trained = net(x)
        net.train()
        for module in net.modules():
            if isinstance(module, torch.nn.Dropout2d):
                module.eval()
        batch_stats = net(x)
    assert torch.equal(trained, evaluated)
    assert not torch.allclose(batch_stats, evaluated)


def test_validation_split_is_by_source_and_seeded() -> None:
    rows = [{"source": f"face{i // 2}.png"} for i in range(20)]
    train, val = split_by_source(rows, 0.2, seed=4)
    assert sorted(train + val) == list(range(20))
    assert {rows[i]["source"] for i in train}.isdisjoint({rows[i]["source"] for i in val})
    assert len({rows[i]["source"] for i in val}) == 2
    assert split_by_source(rows, 0.2, seed=4) == (train, val)


def test_loss_decreases_on_a_tiny_set(tiny_pairs: Path, tmp_path: Path) -> None:
    # A learnable target (the binary composite darkened by 20 % inside the mask) checks that
    # gradients reach the network and the optimiser fits it within a few steps.
    pairs = tmp_path / "pairs"
    shutil.copytree(tiny_pairs, pairs)
    for row in read_manifest(pairs):
        original, edited = (np.asarray(Image.open(pairs / row[k]), dtype=np.float32)
                            for k in ("original", "edited"))
        inside = np.asarray(Image.open(pairs / row["mask"]))[..., None] >= 128
        target = np.where(inside, edited * 0.8, original)
        Image.fromarray(np.rint(target).astype(np.uint8)).save(pairs / row["poisson"])
    losses: list[float] = []
    config = _config(pairs, tmp_path / "s.pt", steps=30, batch=4, val_every=30, lr=1e-3,
                     val_fraction=0.0)
    train_suppressor(config, progress=False, on_log=lambda row: losses.append(row["train_loss"]))
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.9 * sum(losses[:5]) / 5
    rows = read_manifest(pairs)
    original, edited, target = (load_pair_images(pairs, rows, 64, k).float() / 255
                                for k in ("original", "edited", "poisson"))
    masks = load_pair_masks(pairs, rows, 64).float() / 255
    net = load_maresunet(tmp_path / "s.pt")
    assert net.composite == "binary"
    with torch.no_grad():
        fitted = suppressor_loss(MAResUNetSuppressor(net)(original, edited, masks), target)
    hard = torch.where(masks >= 0.5, edited, original)
    assert float(fitted) < 0.9 * float(suppressor_loss(hard, target))


def test_binary_composites_take_the_edit_inside_the_binarised_mask(tiny_pairs: Path) -> None:
    rows = read_manifest(tiny_pairs)[:2]
    masks = load_pair_masks(tiny_pairs, rows, 64)
    composite = binary_composites(tiny_pairs, rows, 64, masks)
    original, edited = (load_pair_images(tiny_pairs, rows, 64, k) for k in ("original", "edited"))
    inside = (masks >= 128).expand_as(composite)
    assert inside.any() and (~inside).any()
    assert torch.equal(composite[inside], edited[inside])
    assert torch.equal(composite[~inside], original[~inside])


def test_mask_input_trains_a_mask_conditioned_network(tiny_pairs: Path, tmp_path: Path) -> None:
    out = tmp_path / "masked.pt"
    result = train_suppressor(_config(tiny_pairs, out, mask_input=True), progress=False)
    assert result.step == 6 and "val_psnr" in result.metrics
    net = load_maresunet(out)
    assert net.num_channels == 4 and net.firstconv.weight.shape[1] == 4
    check = check_file(out)
    assert check.ok and "binary composite, the mask as a 4th input" in check.line()
    rows = read_manifest(tiny_pairs)
    x = load_pair_images(tiny_pairs, rows[:2], 64, "naive").float() / 255
    with pytest.raises(ValueError, match="mask-conditioned"):
        residual_refine(net, x)
    # resuming with a different --mask-input is refused
    with pytest.raises(ValueError, match="mask-input"):
        train_suppressor(_config(tiny_pairs, out), progress=False, resume=True)


def test_colour_jitter_is_label_preserving_for_poisson_targets(tiny_pairs: Path) -> None:
    from shared.blend import poisson_blend

    rows = read_manifest(tiny_pairs)[:2]
    edited, original = (load_pair_images(tiny_pairs, rows, 64, kind).float() / 255
                        for kind in ("edited", "original"))
    mask = load_pair_masks(tiny_pairs, rows, 64).float() / 255
    # mid-range images, so that neither the transform nor the blend clamps
    edited, original = 0.3 + 0.4 * edited, 0.3 + 0.4 * original
    target = poisson_blend(edited, original, mask)

    def jitter(a, b):
        return colour_jittered(a, b, 0.2, torch.Generator().manual_seed(7))

    edited_j, original_j = jitter(edited, original)
    target_j, _ = jitter(target, original)
    assert not torch.allclose(edited_j, edited, atol=1e-2)  # it did change the colours
    assert (poisson_blend(edited_j, original_j, mask) - target_j).abs().max() < 2e-3


@pytest.mark.parametrize("colour_jitter", [0.0, 0.2])
def test_resume_is_bit_exact(tiny_pairs: Path, tmp_path: Path, colour_jitter: float) -> None:
    straight = tmp_path / "straight.pt"
    split = tmp_path / "split.pt"
    train_suppressor(_config(tiny_pairs, straight, colour_jitter=colour_jitter), progress=False)
    first = train_suppressor(_config(tiny_pairs, split, colour_jitter=colour_jitter),
                             progress=False, stop_at=3)
    assert first.step == 3
    second = train_suppressor(_config(tiny_pairs, split, colour_jitter=colour_jitter),
                              progress=False, resume=True)
    assert second.step == 6
    a = torch.load(straight, weights_only=True)
    b = torch.load(split, weights_only=True)
    assert a["format"] == b["format"] == CHECKPOINT_FORMAT
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    with open(split.with_suffix(".log.csv")) as handle:
        assert [int(r["step"]) for r in csv.DictReader(handle)] == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="steps"):
        train_suppressor(_config(tiny_pairs, split, steps=8, colour_jitter=colour_jitter),
                         progress=False, resume=True)
    with pytest.raises(ValueError, match="colour-jitter"):
        train_suppressor(_config(tiny_pairs, split, colour_jitter=0.5), progress=False,
                         resume=True)


def test_checkpoint_is_usable(tiny_pairs: Path, tmp_path: Path) -> None:
    out = tmp_path / "ckpt.pt"
    result = train_suppressor(_config(tiny_pairs, out, steps=3), progress=False)
    assert result.plot.is_file() and result.log.is_file()
    check = check_file(out)
    assert check.ok, check.line()
    assert "MAResU-Net" in check.kind
    net = load_maresunet(out)
    assert net.base_width == 8 and not net.training
    state = torch.load(out, weights_only=True)
    assert state["step"] == 3
    assert set(state["rng"]) == {"torch", "sampler", "numpy", "python"}
    assert {"val_l1", "val_psnr", "val_ssim"} <= set(state["metrics"])
    # after a few steps the head is non-zero and the random trunk makes the residual follow
    # the image: swapping images under the same masks changes it
    dependence = state["metrics"]["val_input_dependence"]
    assert 0 < dependence < 10


def test_cli_trains(tiny_pairs: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.pt"
    result = CliRunner().invoke(app, [
        "train", "suppressor", "--pairs", str(tiny_pairs), "--out", str(out), "--size", "64",
        "--steps", "2", "--batch", "2", "--base-width", "8", "--device", "cpu",
        "--val-fraction", "0.25"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "step 2/2" in result.output
    bad = CliRunner().invoke(app, ["train", "suppressor", "--pairs", str(tmp_path / "none"),
                                   "--out", str(out), "--device", "cpu"])
    assert bad.exit_code == 2
    soft = tmp_path / "soft.pt"
    result = CliRunner().invoke(app, [
        "train", "suppressor", "--pairs", str(tiny_pairs), "--out", str(soft), "--size", "64",
        "--steps", "1", "--batch", "2", "--base-width", "8", "--device", "cpu",
        "--composite", "soft", "--mask-input"])
    assert result.exit_code == 0, result.output
    net = load_maresunet(soft)
    assert (net.composite, net.num_channels) == ("soft", 4)
    wrong = CliRunner().invoke(app, [
        "train", "suppressor", "--pairs", str(tiny_pairs), "--out", str(soft),
        "--composite", "hard", "--device", "cpu"])
    assert wrong.exit_code == 2 and "composite" in wrong.output


def test_manifest_rows_are_read(tiny_pairs: Path) -> None:
    assert len(read_manifest(tiny_pairs)) == 8
