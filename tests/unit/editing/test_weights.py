import json

import torch
from typer.testing import CliRunner

from facedit.cli import app
from shared.editing.weights import check_file, import_file, sha256_file
from tests.unit.core.checkpoints import small_generator, write_weights_dir


def test_check_recognises_every_official_layout(tmp_path):
    folder = write_weights_dir(tmp_path / "w")
    torch.save({"g_ema": small_generator().state_dict(), "latent_avg": torch.zeros(32)},
               folder / "stylegan2.pt")
    expected = {
        "e4e_ffhq_encode.pt": "pSp/e4e", "diff_cam_weight.pt": "Diff-CAM",
        "maresunet_suppressor.pt": "MAResU-Net", "stylegan2.pt": "StyleGAN2",
        "directions/smile.pt": "InterFaceGAN", "directions/Eyeglasses.npy": "SDEA",
    }
    for name, kind in expected.items():
        result = check_file(folder / name)
        assert result.ok, result.line()
        assert kind in result.kind
        assert result.sha256 == sha256_file(folder / name)


def test_check_explains_unusable_files(tmp_path):
    folder = write_weights_dir(tmp_path / "w")
    data = (folder / "diff_cam_weight.pt").read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    assert "truncated or corrupt" in check_file(truncated).detail

    wrong_kind = tmp_path / "list.pt"
    torch.save([1, 2, 3], wrong_kind)
    assert not check_file(wrong_kind).ok

    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    assert not check_file(text).ok

    state = torch.load(folder / "diff_cam_weight.pt", weights_only=True)
    state["fc.weight"] = torch.zeros(17, 7)
    broken = tmp_path / "broken_diffcam.pt"
    torch.save(state, broken)
    result = check_file(broken)
    assert not result.ok and result.kind.startswith("Diff-CAM")
    assert "fc.weight" in result.detail
    assert "\n" not in result.line()

    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    assert check_file(empty).detail == "the file is empty (0 bytes)"
    assert check_file(tmp_path / "nope.pt").kind == "missing"


def test_import_copies_and_records_sha256(tmp_path):
    source = write_weights_dir(tmp_path / "downloads")
    target_dir = tmp_path / "weights"
    result, target = import_file(source / "diff_cam_weight.pt", target_dir)
    assert target.read_bytes() == (source / "diff_cam_weight.pt").read_bytes()
    manifest = json.loads((target_dir / "manifest.json").read_text())
    assert manifest["diff_cam_weight.pt"]["sha256"] == result.sha256 == sha256_file(target)


def test_weights_cli(tmp_path, monkeypatch):
    folder = write_weights_dir(tmp_path / "w")
    monkeypatch.setenv("FACEDIT_WEIGHTS_DIR", str(folder))
    from shared.core.config import get_settings

    get_settings.cache_clear()
    try:
        runner = CliRunner()
        listing = runner.invoke(app, ["weights", "list"])
        assert listing.exit_code == 0 and "found" in listing.output
        rows = {
            row["file"]: row
            for row in map(json.loads, runner.invoke(app, ["weights", "list", "--json"])
                           .output.splitlines())
        }
        assert rows["e4e_ffhq_encode.pt"]["found"] == str(folder / "e4e_ffhq_encode.pt")
        assert rows["deghosting.pt"]["found"] is None
        assert "encoder4editing" in rows["e4e_ffhq_encode.pt"]["source"]
        ok = runner.invoke(app, ["weights", "check", str(folder / "e4e_ffhq_encode.pt")])
        assert ok.exit_code == 0, ok.output
        bad = tmp_path / "bad.pt"
        bad.write_bytes(b"\x00" * 100)
        failed = runner.invoke(app, ["weights", "check", str(bad)])
        assert failed.exit_code == 1 and "unusable" in failed.output
        imported = runner.invoke(app, ["weights", "import", str(bad)])
        assert imported.exit_code == 1
    finally:
        get_settings.cache_clear()
