"""`facedit run` end to end on the embedded runtime (SQLite + local storage, toy models)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from facedit.cli import app
from tests.browser import chromium, load_all_images, page_rows
from tests.unit.core.image_factory import jpeg_bytes, png_bytes, png_header_only


@pytest.fixture()
def env(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    monkeypatch.setenv("FACEDIT_DATA_DIR", str(data_dir))
    monkeypatch.delenv("FACEDIT_DATABASE_URL", raising=False)
    monkeypatch.delenv("FACEDIT_STORAGE_URL", raising=False)
    from shared.core.config import get_settings

    get_settings.cache_clear()
    yield data_dir
    get_settings.cache_clear()


def _read_jobs(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "jobs.jsonl").read_text().splitlines()]


def _invoke(args: list[str]):
    return CliRunner().invoke(app, args, catch_exceptions=False)


def test_bad_inputs_fail_their_own_job_only(tmp_path, env, dev_faces):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for face in dev_faces[:3]:
        (inputs / face.name).symlink_to(face)
    bad = {
        "not_an_image.jpg": b"hello, I am a text file\n" * 20,
        "truncated.jpg": jpeg_bytes(256, 256)[:700],
        "zero.png": b"",
        "tiny.png": png_bytes(32, 32),
        "bomb.png": png_header_only(20000, 20000),
    }
    for name, data in bad.items():
        (inputs / name).write_bytes(data)
    out = tmp_path / "out"
    result = _invoke(["run", str(inputs), str(tmp_path / "missing.jpg"), "--edit", "smile=+2",
                      "--out", str(out), "--models", "toy", "--batch-size", "4"])
    assert result.exit_code == 1, result.output
    jobs = {Path(j["input"]).name: j for j in _read_jobs(out)}
    assert len(jobs) == 9
    expected = {
        "not_an_image.jpg": "invalid_image", "truncated.jpg": "invalid_image",
        "zero.png": "invalid_image", "tiny.png": "image_too_small",
        "bomb.png": "image_too_large", "missing.jpg": "input_not_found",
    }
    for name, code in expected.items():
        assert jobs[name]["status"] == "failed", jobs[name]
        assert jobs[name]["error_code"] == code, jobs[name]
    for face in dev_faces[:3]:
        job = jobs[face.name]
        assert job["status"] == "succeeded" and job["error_code"] is None
        output = Path(job["output"])
        assert output.is_file() and output.parent.parent.parent.name == "outputs"
        with Image.open(output) as image:
            assert image.size == (256, 256)
    # the summary table names the failures
    assert "image_too_small" in result.output and "toy preset" in result.output


@pytest.mark.parametrize(
    "edit, message",
    [("wings=+3", "not available"), ("smile=nan", "not finite"), ("smile=abc", "not a number"),
     ("smile", "expected ATTRIBUTE=STRENGTH")],
)
def test_bad_arguments_exit_2_before_any_job(tmp_path, env, dev_faces, edit, message):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["run", str(dev_faces[0]), "--edit", edit, "--out", str(out), "--models", "toy"]
    )
    assert result.exit_code == 2
    assert message in result.output
    database = env / "facedit.db"
    if database.exists():
        with sqlite3.connect(database) as conn:
            assert conn.execute("select count(*) from jobs").fetchone()[0] == 0
    assert not (out / "jobs.jsonl").exists()


def test_whole_dev_set_defaults_to_poisson_with_named_results_and_a_gallery(
    tmp_path, env, faces_dir, dev_faces
):
    """The issue's "done when": toy models, no options → results equal the Poisson composite,
    named after their inputs, and an index.html a browser renders with every image."""
    folder = tmp_path / "dev_copy"
    folder.mkdir()
    for face in dev_faces:
        (folder / face.name).symlink_to(face)
    (folder / "zzz_corrupt.jpg").write_bytes(jpeg_bytes()[:500])
    out = tmp_path / "o"
    result = _invoke(["run", str(folder), "--edit", "smile=+2", "--out", str(out),
                      "--models", "toy", "--save-intermediates"])
    assert result.exit_code == 1
    jobs = _read_jobs(out)
    assert len(jobs) == len(dev_faces) + 1 == 151
    failed = [j for j in jobs if j["status"] != "succeeded"]
    assert [(Path(j["input"]).name, j["error_code"]) for j in failed] == [
        ("zzz_corrupt.jpg", "invalid_image")
    ]
    for job in jobs:
        if job["status"] != "succeeded":
            continue
        assert job["suppressor"] == "poisson"  # auto, without a trained MAResU-Net
        [entry] = job["results"]
        stem = Path(job["input"]).stem
        assert entry["file"] == f"{stem}.smile+2.png"
        result_pixels = np.asarray(Image.open(out / entry["file"]))
        poisson = np.asarray(Image.open(out / entry["intermediates"]["poisson"]))
        np.testing.assert_array_equal(result_pixels, poisson)
        assert Path(job["output"]).is_file()  # the storage layout is kept as well
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto((out / "index.html").as_uri())
        assert page_rows(page) == 151
        images = load_all_images(page)
        # original + result + 4 intermediates per face, the corrupt input has no preview
        assert len(images) == 150 * 6
        assert all(i["natural"] > 0 for i in images), [i for i in images if not i["natural"]]
        failed_row = page.locator("section.row.st-failed")
        assert failed_row.count() == 1 and "invalid_image" in failed_row.inner_text()


def test_results_are_deterministic_and_outside_the_mask_unchanged(tmp_path, env, dev_faces):
    outs = []
    for run_index in range(2):
        out = tmp_path / f"run{run_index}"
        result = _invoke(["run", str(dev_faces[0]), str(dev_faces[-1]), "--edit", "age=-3",
                          "--out", str(out), "--models", "toy", "--save-intermediates"])
        assert result.exit_code == 0, result.output
        outs.append(_read_jobs(out))
    for first, second in zip(*outs, strict=True):
        a = np.asarray(Image.open(first["output"]))
        b = np.asarray(Image.open(second["output"]))
        np.testing.assert_array_equal(a, b)
        folder = Path(first["output"]).parent
        assert {p.name for p in folder.iterdir()} >= {
            "result.png", "mask.png", "edited.png", "naive.png", "poisson.png"
        }


def test_console_script_runs(tmp_path, env, dev_faces):
    """The installed `facedit` entry point, as a user runs it."""
    out = tmp_path / "cli"
    exe = Path(sys.executable).with_name("facedit")
    proc = subprocess.run(
        [str(exe), "run", str(dev_faces[0]), "-e", "smile=+1", "-o", str(out), "--models", "toy"],
        capture_output=True, text=True, timeout=300, env={**os.environ},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _read_jobs(out)[0]["status"] == "succeeded"


def test_demo_command(tmp_path, env):
    """The demo shows Poisson removing seams (no GAN) and the toy pipeline, in one gallery."""
    out = tmp_path / "demo"
    result = _invoke(["demo", "--out", str(out), "--models", "toy"])
    assert result.exit_code == 0, result.output
    jobs = _read_jobs(out / "pipeline")
    assert len(jobs) == 4 and all(j["status"] == "succeeded" for j in jobs)
    assert "toy preset" in result.output
    index = out / "index.html"
    assert f"demo gallery: {index}" in " ".join(result.output.split())
    page = index.read_text()
    assert page.count("synthetic local edit: naive vs Poisson") == 3
    assert page.count("toy GAN: untrained models, not a meaningful edit") == 4
    # every synthetic row: Poisson leaves less seam than the naive composite
    seams = [(float(n), float(p)) for n, p in re.findall(
        r"naive seam</b>\s*([0-9.]+).*?Poisson seam</b>\s*([0-9.]+)", page, flags=re.S)]
    assert len(seams) == 3 and all(p < n for n, p in seams), seams


def test_edit_unaligned_photo_returns_the_whole_photo(tmp_path, env, faces_dir):
    """Alignment (dlib) → edit → paste-back: the user gets their whole photo back."""
    photo = sorted((faces_dir / "photos").glob("*.jpg"))[0]
    out = tmp_path / "edited.png"
    result = _invoke(["edit", str(photo), "-e", "smile=+3", "-o", str(out), "--models", "toy",
                      "--align", "always", "--suppressor", "poisson", "--save-intermediates"])
    assert result.exit_code == 0, result.output
    with Image.open(photo) as original_image:
        original = np.asarray(original_image.convert("RGB"))
    edited = np.asarray(Image.open(out))
    assert edited.shape == original.shape
    changed = np.any(edited != original, axis=-1)
    assert 0 < changed.mean() < 0.9  # the face region changed, the rest of the photo did not
    ys, xs = np.nonzero(changed)
    assert ys.min() > 0 or xs.min() > 0 or ys.max() < original.shape[0] - 1
    assert (tmp_path / "edited.mask.png").is_file()


def test_edit_without_a_face_fails_with_no_face_found(tmp_path, env):
    flat = tmp_path / "wall.png"
    flat.write_bytes(png_bytes(300, 200))
    result = _invoke(["edit", str(flat), "-e", "smile=+1", "-o", str(tmp_path / "x.png"),
                      "--models", "toy", "--align", "always"])
    assert result.exit_code == 1
    assert "no_face_found" in result.output


def test_attributes_lists_the_toy_edits(env):
    result = _invoke(["attributes", "--models", "toy"])
    assert result.exit_code == 0
    for name in ("smile", "age", "pose", "glasses"):
        assert name in result.output
