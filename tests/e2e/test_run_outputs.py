"""What a person gets from `facedit run` / `facedit edit`: named results, formats, resuming,
sweeps, stored latents, messages that read right (embedded runtime, toy models)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from facedit.cli import app


@pytest.fixture()
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEDIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("FACEDIT_DATABASE_URL", raising=False)
    monkeypatch.delenv("FACEDIT_STORAGE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    from shared.core.config import get_settings

    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


@pytest.fixture()
def inputs(tmp_path, dev_faces) -> Path:
    """Three small aligned faces (links to the research photos, never copies)."""
    folder = tmp_path / "in"
    folder.mkdir()
    small = [p for p in dev_faces if Image.open(p).size == (256, 256)][:3]
    for path in small:
        (folder / path.name).symlink_to(path)
    return folder


@pytest.fixture()
def inversions(monkeypatch) -> list[int]:
    """Counts the images the encoder inverts (pipeline.invert's batch sizes)."""
    import shared.editing.pipeline as pipeline

    calls: list[int] = []
    original = pipeline.invert

    def counting(encoder, images, size):
        calls.append(images.shape[0])
        return original(encoder, images, size)

    monkeypatch.setattr(pipeline, "invert", counting)
    return calls


def _run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "jobs.jsonl").read_text().splitlines()]


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_results_are_named_after_inputs_and_never_overwrite(tmp_path, env, dev_faces):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "portrait.jpg").symlink_to(dev_faces[0])
    (b / "portrait.jpg").symlink_to(dev_faces[1])
    out = tmp_path / "out"
    out.mkdir()
    (out / "portrait.smile+2.png").write_bytes(b"the user's own file")
    result = _run("run", str(a / "portrait.jpg"), str(b / "portrait.jpg"), "-e", "smile=+2",
                  "--out", str(out), "--models", "toy")
    assert result.exit_code == 0, result.output
    assert (out / "portrait.smile+2.png").read_bytes() == b"the user's own file"
    rows = _log(out)
    assert [r["results"][0]["file"] for r in rows] == ["portrait-2.smile+2.png",
                                                       "portrait-3.smile+2.png"]
    for row in rows:
        named = _pixels(out / row["results"][0]["file"])
        np.testing.assert_array_equal(named, _pixels(Path(row["output"])))  # same result
    assert not np.array_equal(_pixels(out / "portrait-2.smile+2.png"),
                              _pixels(out / "portrait-3.smile+2.png"))


@pytest.mark.parametrize("fmt, magic", [("jpg", b"\xff\xd8"), ("webp", b"RIFF")])
def test_format_and_quality(tmp_path, env, inputs, fmt, magic):
    sizes = []
    for quality in (30, 95):
        out = tmp_path / f"out{quality}"
        result = _run("run", str(inputs), "-e", "age=-2", "--out", str(out), "--models", "toy",
                      "--format", fmt, "--quality", str(quality))
        assert result.exit_code == 0, result.output
        files = sorted(out.glob(f"*.age-2.{fmt}"))
        assert len(files) == 3 and all(f.read_bytes().startswith(magic) for f in files)
        sizes.append(sum(f.stat().st_size for f in files))
    assert sizes[0] < sizes[1]  # the quality reaches the encoder


def test_rerun_skips_what_is_done_and_redoes_what_changed(tmp_path, env, inputs, inversions):
    out = tmp_path / "out"
    args = ["run", str(inputs), "-e", "smile=+1", "--out", str(out), "--models", "toy"]
    assert _run(*args).exit_code == 0
    first = _log(out)
    assert sum(inversions) == 3
    again = _run(*args)
    assert again.exit_code == 0 and "3 skipped" in again.output
    assert sum(inversions) == 3 and len(_log(out)) == 3  # nothing ran, nothing logged
    # a deleted result, a changed input, and other edits each make the input run again
    Path(out / first[0]["results"][0]["file"]).unlink()
    changed = inputs / sorted(os.listdir(inputs))[1]
    pixels = _pixels(changed).copy()
    changed.unlink()
    Image.fromarray(pixels[:, ::-1]).save(changed.with_suffix(".png") if changed.suffix != ".png"
                                          else changed)
    third = _run(*args)
    assert third.exit_code == 0 and "1 skipped" in third.output, third.output
    assert sum(inversions) == 5
    assert (out / first[0]["results"][0]["file"]).is_file()
    other = _run(*args[:3], "smile=+2", *args[4:])
    assert other.exit_code == 0 and "skipped" not in other.output
    assert len(list(out.glob("*.smile+2.png"))) == 3
    forced = _run(*args, "--force")
    assert forced.exit_code == 0 and "skipped" not in forced.output
    # 3 first results (one came back under its old name after being deleted), the changed
    # input's new result beside its old one, and 3 forced ones under new names: 7 files
    assert len(list(out.glob("*.smile+1.png"))) == 7


def test_sweep_gives_one_result_per_step_from_one_inversion(tmp_path, env, inputs, inversions):
    out = tmp_path / "out"
    result = _run("run", str(inputs), "-e", "smile=-3:3:7", "-e", "age=-1", "--out", str(out),
                  "--models", "toy", "--save-intermediates")
    assert result.exit_code == 0, result.output
    assert sum(inversions) == 3  # one per input, not one per step
    rows = _log(out)
    labels = [r["label"] for r in rows[0]["results"]]
    assert labels == [f"smile{s:+g},age-1" for s in (-3, -2, -1, 0, 1, 2, 3)]
    stem = Path(rows[0]["input"]).stem
    steps = [_pixels(out / f"{stem}.{label}.png") for label in labels]
    assert all(not np.array_equal(steps[0], other) for other in steps[1:])
    for entry in rows[0]["results"]:
        assert (out / entry["intermediates"]["mask"]).is_file()
    page = (out / "index.html").read_text()
    assert "7 edits" in page and page.count('class="row ') == 3


@pytest.mark.parametrize("sweep", ["smile=1:2:1", "smile=1:2:65", "smile=2:2:5"])
def test_bad_sweeps_exit_2_before_any_job(tmp_path, env, inputs, sweep):
    out = tmp_path / "out"
    result = _run("run", str(inputs), "-e", sweep, "--out", str(out), "--models", "toy")
    assert result.exit_code == 2 and "sweep" in result.output
    assert not out.exists()


def test_saved_latents_edit_without_inverting_again(tmp_path, env, inputs, inversions):
    out = tmp_path / "out"
    result = _run("run", str(inputs), "-e", "smile=+2", "--out", str(out), "--models", "toy",
                  "--save-latents")
    assert result.exit_code == 0, result.output
    row = _log(out)[0]
    latent = out / row["latent"]
    assert latent.name == f"{Path(row['input']).stem}.latent.pt"
    photo = Path(row["input"])
    plain, stored = tmp_path / "plain.png", tmp_path / "stored.png"
    assert _run("edit", str(photo), "-e", "age=-2", "-o", str(plain), "--models", "toy"
                ).exit_code == 0
    inversions.clear()
    from_latent = _run("edit", str(photo), "-e", "age=-2", "-o", str(stored), "--models", "toy",
                       "--latent", str(latent))
    assert from_latent.exit_code == 0, from_latent.output
    assert inversions == []  # no inversion at all
    assert np.abs(_pixels(plain).astype(int) - _pixels(stored).astype(int)).max() <= 1
    other = _run("edit", str(inputs / sorted(os.listdir(inputs))[1]), "-e", "age=-2", "-o",
                 str(tmp_path / "x.png"), "--models", "toy", "--latent", str(latent))
    assert other.exit_code == 0 and "other image bytes" in other.output
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a latent")
    refused = _run("edit", str(photo), "-e", "age=-2", "-o", str(tmp_path / "y.png"),
                   "--models", "toy", "--latent", str(bad))
    assert refused.exit_code == 2 and "not a facedit latent file" in refused.output


def test_edit_into_a_folder_writes_a_gallery(tmp_path, env, inputs):
    photo = sorted(inputs.iterdir())[0]
    out = tmp_path / "one"
    result = _run("edit", str(photo), "-e", "smile=-1:1:3", "--out", str(out), "--models", "toy")
    assert result.exit_code == 0, result.output
    assert len(list(out.glob(f"{photo.stem}.smile*.png"))) == 3
    assert (out / "index.html").is_file() and "gallery:" in result.output
    both = _run("edit", str(photo), "-e", "smile=1", "--out", str(out), "-o", "x.png")
    assert both.exit_code == 2 and "either --output FILE or --out DIR" in both.output


def test_edit_keeps_no_copies_behind(tmp_path, env, inputs, monkeypatch):
    """`facedit edit` works in a scratch store that it removes: nothing of the run stays in
    the data folder or the temporary folder, only the result the user asked for."""
    import tempfile

    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_root))
    photo = sorted(inputs.iterdir())[0]
    result = _run("edit", str(photo), "-e", "smile=+1", "-o", str(tmp_path / "r.png"),
                  "--models", "toy", "--save-intermediates")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.png").is_file() and (tmp_path / "r.mask.png").is_file()
    assert list(scratch_root.iterdir()) == []
    left = [p for p in env.rglob("*") if p.is_file()] if env.exists() else []
    assert not [p for p in left if "storage" in p.parts or p.suffix == ".db"], left


def test_maresunet_without_its_checkpoint_says_how_to_get_one(tmp_path, env, inputs):
    from tests.unit.core.checkpoints import write_weights_dir

    weights = write_weights_dir(tmp_path / "weights")
    (weights / "maresunet_suppressor.pt").unlink()
    out = tmp_path / "out"
    refused = _run("run", str(inputs), "-e", "smile=+1", "--out", str(out), "--models",
                   str(weights), "--suppressor", "maresunet")
    assert refused.exit_code == 2
    text = " ".join(refused.output.split())
    assert "maresunet_suppressor.pt" in text and "facedit train suppressor" in text
    default = _run("run", str(inputs), "-e", "smile=+1", "--out", str(out), "--models",
                   str(weights))
    assert default.exit_code == 0, default.output
    assert {r["suppressor"] for r in _log(out)} == {"poisson"}


def test_text_is_never_eaten_as_markup(tmp_path, env):
    odd = tmp_path / "odd[bold]name[@x].png"
    odd.write_bytes(b"not an image")
    result = _run("run", str(odd), "-e", "smile=+1", "--out", str(tmp_path / "o"),
                  "--models", "toy")
    assert result.exit_code == 1
    assert "odd[bold]name[@x].png" in "".join(result.output.split()).replace("│", "")
    help_text = _run("run", "--help").output
    assert "ATTRIBUTE=START:END:STEPS" in help_text and "pose=1.5@0-6" in help_text
    edit_help = _run("edit", "--help").output
    assert "--latent" in edit_help and "--out" in edit_help


def test_progress_shows_rate_and_time_left(tmp_path, env, inputs):
    result = _run("run", str(inputs), "-e", "smile=+1", "--out", str(tmp_path / "o"),
                  "--models", "toy", "--batch-size", "1")
    assert result.exit_code == 0
    assert "3/3" in result.output and "img/s" in result.output and "left" in result.output


def test_service_commands_without_the_extra_say_which_to_install(tmp_path):
    """A default install has no httpx/celery/uvicorn: one line, no traceback."""
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(textwrap.dedent("""
        import sys
        class _NoService:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"httpx", "celery", "uvicorn", "fastapi"}:
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        sys.meta_path.insert(0, _NoService())
    """))
    Image.new("RGB", (64, 64)).save(tmp_path / "photo.png")
    environment = {**os.environ, "PYTHONPATH": str(blocker), "FACEDIT_API_KEY": "k"}
    code = "import sys; from facedit.cli import app; sys.exit(app())"
    for command in (["submit", str(tmp_path), "-e", "smile=+1"], ["status", "x"],
                    ["worker"], ["api"]):
        proc = subprocess.run([sys.executable, "-c", code, *command], capture_output=True,
                              text=True, timeout=120, env=environment)
        assert proc.returncode == 1, (command, proc.stdout, proc.stderr)
        assert "pip install 'facedit[service]'" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
