"""``facedit data blend-pairs``: suppressor training pairs from a folder of faces."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from facedit.cli import app
from shared.train.pairs import read_manifest


def test_blend_pairs_command(dev_faces: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "pairs"
    result = CliRunner().invoke(app, ["data", "blend-pairs", str(dev_faces[0].parent), str(out),
                                      "--size", "64", "--limit", "3", "--per-image", "2",
                                      "--seed", "7"])
    assert result.exit_code == 0, result.output
    rows = read_manifest(out)
    assert len(rows) == 6 and {tuple(r["seed"][:2]) for r in rows} == {(7, 0), (7, 1), (7, 2)}
    assert len(list(out.glob("*.png"))) == 30


def test_blend_pairs_gan_toy(dev_faces: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "gan"
    result = CliRunner().invoke(app, ["data", "blend-pairs", str(dev_faces[0].parent), str(out),
                                      "--source", "gan", "--models", "toy", "--device", "cpu",
                                      "--size", "64", "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert [r["recipe"] for r in read_manifest(out)] == ["gan", "gan"]


def test_blend_pairs_refuses_unknown_source(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["data", "blend-pairs", str(tmp_path), str(tmp_path / "o"),
                                      "--source", "diffusion"])
    assert result.exit_code == 2
