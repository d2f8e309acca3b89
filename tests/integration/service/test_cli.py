"""The service commands: facedit submit / status against the running API, keys, db."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.integration.service.conftest import REPO, Stack, decode_png

CLI = [sys.executable, "-c", "import sys; from facedit.cli import app; sys.exit(app())"]


def _run(
    stack: Stack, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], cwd=REPO, env=env or stack.env, capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip


def test_submit_waits_and_downloads_then_status(
    stack: Stack, small_faces: list[Path], tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in small_faces[:3]:
        (folder / path.name).symlink_to(path)  # read in place, never copied
    (folder / "notes.txt").write_text("not an image, skipped")
    out = tmp_path / "results"
    result = _run(
        stack, "submit", str(folder), "--edit", "smile=+2", "--edit", "age=-1",
        "--api", stack.api_url, "--key", stack.keys["alice"], "--suppressor", "naive",
        "--wait", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 job(s) queued" in result.stdout and "3 succeeded" in result.stdout
    files = sorted(p.name for p in out.glob("*.png"))
    assert files == [f"{p.stem}.smile+2,age-1.png" for p in sorted(small_faces[:3])]
    assert decode_png((out / files[0]).read_bytes()).shape == (256, 256, 3)
    records = [json.loads(line) for line in (out / "jobs.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["succeeded"] * 3
    assert {r["suppressor"] for r in records} == {"naive"}
    assert f"gallery: {out / 'index.html'}" in " ".join(result.stdout.split())
    page = (out / "index.html").read_text()
    assert page.count('class="row ') == 3 and "no preview" not in page
    batch_id = stack.job_row(records[0]["job_id"]).batch_id
    shown = _run(stack, "status", batch_id, "--api", stack.api_url, "--key", stack.keys["alice"])
    assert shown.returncode == 0, shown.stderr
    assert batch_id in shown.stdout and "succeeded 3" in shown.stdout
    foreign = _run(stack, "status", batch_id, "--api", stack.api_url, "--key", stack.keys["bob"])
    assert foreign.returncode == 2 and "batch_not_found" in foreign.stderr


def test_submit_refuses_bad_edits_before_uploading(stack: Stack, tmp_path: Path) -> None:
    result = _run(stack, "submit", str(tmp_path), "--edit", "smile=nan", "--api",
                  stack.api_url, "--key", stack.keys["alice"])
    assert result.returncode == 2 and "not finite" in result.stderr


def test_keys_create_list_revoke(stack: Stack) -> None:
    created = _run(stack, "keys", "create", "dave", "--name", "laptop")
    assert created.returncode == 0, created.stderr
    lines = dict(line.split(":", 1) for line in created.stdout.splitlines() if ":" in line)
    key_id, key = lines["key id"].strip(), lines["api key"].strip()
    assert key.startswith(f"fdk_{key_id}_") and "webhook signing secret" in lines
    with httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {key}"}) as c:
        assert c.get("/v1/attributes").status_code == 200
        listed = _run(stack, "keys", "list", "--owner", "dave")
        assert key_id in listed.stdout and key not in listed.stdout
        revoked = _run(stack, "keys", "revoke", key_id)
        assert revoked.returncode == 0, revoked.stderr
        assert c.get("/v1/attributes").json()["error"]["code"] == "api_key_revoked"
    assert _run(stack, "keys", "revoke", key_id).returncode == 1
    assert _run(stack, "keys", "create", "not an owner").returncode == 2


def test_db_upgrade_migrates_a_fresh_database(stack: Stack, tmp_path: Path) -> None:
    from shared.jobs import JobStore

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    env = {**stack.env, "FACEDIT_DATABASE_URL": url}
    result = _run(stack, "db", "upgrade", env=env)
    assert result.returncode == 0, result.stderr
    with JobStore(url) as store:
        head = store.head_revision()
        assert store.current_revision() == head
    assert f"revision {head}" in result.stdout
    assert _run(stack, "db", "upgrade", env=env).returncode == 0  # again: a no-op


def test_submit_a_sweep_downloads_every_step_into_a_gallery(
    stack: Stack, small_faces: list[Path], tmp_path: Path
) -> None:
    from tests.browser import chromium, load_all_images, page_rows

    folder = tmp_path / "photos"
    folder.mkdir()
    for path in small_faces[:2]:
        (folder / path.name).symlink_to(path)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "results"
    result = _run(
        stack, "submit", str(folder), "--edit", "smile=-2:2:3", "--align", "never",
        "--api", stack.api_url, "--key", stack.keys["alice"], "--save-intermediates",
        "--save-latents", "--wait", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr  # the broken input failed
    for path in small_faces[:2]:
        for label in ("smile-2", "smile+0", "smile+2"):
            assert (out / f"{path.stem}.{label}.png").is_file()
            assert (out / f"{path.stem}.{label}.mask.png").is_file()
        assert (out / f"{path.stem}.latent.pt").is_file()
    records = [json.loads(line) for line in (out / "jobs.jsonl").read_text().splitlines()]
    broken = [r for r in records if r["input"] == "broken.png"]
    assert broken and broken[0]["error_code"] == "invalid_image"
    with chromium() as browser:
        page = browser.new_page()
        page.goto((out / "index.html").as_uri())
        assert page_rows(page) == 3
        images = load_all_images(page)
        assert images and all(i["natural"] > 0 for i in images)
        assert "invalid_image" in page.locator("section.row.st-failed").inner_text()
