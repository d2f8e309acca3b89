"""``facedit eval``: a --ckpt network runs as the MAResU-Net in a copy of the bundle; the
loaded bundle is left as it was. (The reports themselves: tests/unit/train/test_evaluate.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from typer.testing import CliRunner

import shared.editing.bundle as bundle_module
import shared.models.maresunet as maresunet_module
import shared.train.evaluate as evaluate_module
from facedit.cli import app
from shared.models.maresunet import MAResUNet, maresunet_checkpoint, zero_init_head


def test_paper_protocol_runs_the_checkpoint_without_changing_the_bundle(
        dev_faces: list[Path], tmp_path: Path, monkeypatch) -> None:
    torch.manual_seed(0)
    checkpoint = tmp_path / "s.pt"
    torch.save(maresunet_checkpoint(zero_init_head(MAResUNet(num_classes=3, base_width=16))),
               checkpoint)
    seen: dict[str, object] = {}

    def loading_bundle(*args, **kwargs):
        seen["bundle"] = bundle = load_bundle(*args, **kwargs)
        seen["bundle_net"] = bundle.suppressor_net
        return bundle

    def loading_network(*args, **kwargs):
        seen["network"] = network = load_maresunet(*args, **kwargs)
        return network

    def evaluating(images, edits, pipeline, *args, **kwargs):
        seen["pipeline"] = pipeline
        return evaluate_paper(images, edits, pipeline, *args, **kwargs)

    load_bundle, load_maresunet = bundle_module.load_bundle, maresunet_module.load_maresunet
    evaluate_paper = evaluate_module.evaluate_paper
    monkeypatch.setattr(bundle_module, "load_bundle", loading_bundle)
    monkeypatch.setattr(maresunet_module, "load_maresunet", loading_network)
    monkeypatch.setattr(evaluate_module, "evaluate_paper", evaluating)
    out = tmp_path / "paper"
    result = CliRunner().invoke(app, [
        "eval", str(dev_faces[0].parent), "--protocol", "paper", "--first", "2",
        "--edit", "smile=+3", "--suppressors", "naive,maresunet", "--models", "toy",
        "--size", "64", "--ckpt", str(checkpoint), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output

    bundle, network, pipeline = seen["bundle"], seen["network"], seen["pipeline"]
    assert pipeline.bundle.suppressor_net is network  # the checkpoint runs ...
    assert pipeline.bundle is not bundle and bundle.suppressor_net is seen["bundle_net"]
    assert bundle.suppressor_net is not network  # ... and the loaded bundle is unchanged
    assert pipeline.config.output_size == 64 and pipeline.bundle.generator is bundle.generator
    params = sum(p.numel() for p in network.parameters())
    report = json.loads((out / "report.json").read_text())
    assert report["values"]["maresunet"]["params"] == params
    assert params != sum(p.numel() for p in bundle.suppressor_net.parameters())  # not toy's


def test_paper_protocol_refuses_a_bad_checkpoint_and_size(tmp_path: Path) -> None:
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    bad_ckpt = CliRunner().invoke(app, ["eval", str(tmp_path), "--protocol", "paper",
                                        "--ckpt", str(tmp_path / "bad.pt")])
    assert bad_ckpt.exit_code == 2 and "--ckpt" in bad_ckpt.output
    no_names = CliRunner().invoke(app, ["eval", str(tmp_path), "--protocol", "paper",
                                        "--edit", "smile=+1", "--suppressors", " , "])
    assert no_names.exit_code == 2 and "name at least one suppressor" in no_names.output
    no_images = CliRunner().invoke(app, ["eval", str(tmp_path), "--protocol", "paper",
                                         "--edit", "smile=+1"])
    assert no_images.exit_code == 2
