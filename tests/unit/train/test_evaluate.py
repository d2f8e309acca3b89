from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image
from typer.testing import CliRunner

from facedit.cli import app
from shared.models.maresunet import MAResUNet, maresunet_checkpoint, zero_init_head


def _checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    net = zero_init_head(MAResUNet(num_classes=3, base_width=8))
    torch.save(maresunet_checkpoint(net), path)
    return path


def test_blend_protocol(tiny_pairs: Path, tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path / "s.pt")
    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["eval", str(tiny_pairs), "--protocol", "blend",
                                      "--ckpt", str(ckpt), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    values = report["values"]
    assert report["count"] == 8
    assert report["methods"] == ["naive", "binary", "poisson", "maresunet"]
    assert values["poisson"]["target_mae"] == 0
    assert values["poisson"]["outside_mae"] == 0
    # the binary composite is the original wherever the mask is < 0.5
    assert values["binary"]["outside_mae"] == 0 and values["binary"]["target_mae"] > 0
    # a zero-initialised head is the identity: the network returns the naive composite
    assert abs(values["maresunet"]["target_mae"] - values["naive"]["target_mae"]) < 1e-6
    assert values["naive"]["seam"] > values["poisson"]["seam"]
    assert values["maresunet"]["params"] > 0
    table = (out / "report.md").read_text()
    assert "| Seam score ↓ |" in table and "PSNR vs Poisson" in table
    with Image.open(out / "figure.png") as figure:
        assert figure.width == 7 * 192 and figure.height == 18 + 4 * 192


def test_blend_protocol_feeds_a_binary_composite_network_its_composite(
        tiny_pairs: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = zero_init_head(MAResUNet(num_classes=3, base_width=8, composite="binary"))
    torch.save(maresunet_checkpoint(net), tmp_path / "b.pt")
    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["eval", str(tiny_pairs), "--protocol", "blend",
                                      "--ckpt", str(tmp_path / "b.pt"), "--out", str(out),
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    values = json.loads((out / "report.json").read_text())["values"]
    # an untrained binary-composite network returns its input: the binary composite
    assert abs(values["maresunet"]["target_mae"] - values["binary"]["target_mae"]) < 1e-6
    assert values["maresunet"]["outside_mae"] == 0


def test_paper_protocol_with_toy_models(dev_faces: list[Path], tmp_path: Path) -> None:
    faces = tmp_path / "faces"
    faces.mkdir()
    for path in dev_faces[:3]:
        (faces / path.name).symlink_to(path)
    out = tmp_path / "paper"
    result = CliRunner().invoke(app, [
        "eval", str(faces), "--protocol", "paper", "--first", "2", "--edit", "smile=+3",
        "--suppressors", "naive,poisson,maresunet,sdea,nonsense", "--models", "toy", "--size", "64",
        "--out", str(out), "--device", "cpu", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["count"] == 2
    values = report["values"]
    for method in ("naive", "poisson", "maresunet"):
        assert 0 < values[method]["ssim"] <= 1
        assert values[method]["mae"] >= 0
        assert values[method]["images_per_s"] > 0
    assert values["naive"]["params"] == 0 and values["maresunet"]["params"] > 0
    assert "psnr" not in values["nonsense"]
    # sdea runs where its weights exist (another suppressor's job); otherwise a note says why
    assert values["sdea"].get("psnr") is not None or any(
        note.startswith("sdea: not evaluated") for note in report["notes"])
    assert any(note.startswith("nonsense: not evaluated") for note in report["notes"])
    table = (out / "report.md").read_text()
    assert table.splitlines()[0] == "| metric | naive | poisson | maresunet | sdea | nonsense |"
    assert "| Params |" in table and "Speed (images/s)" in table
    assert (out / "figure.png").is_file()


def test_bad_protocol_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["eval", str(tmp_path), "--protocol", "speed"])
    assert result.exit_code == 2
    result = CliRunner().invoke(app, ["eval", str(tmp_path), "--protocol", "blend"])
    assert result.exit_code == 2
