"""``facedit db upgrade`` and ``facedit keys`` on a SQLite job database."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from facedit.cli import app
from shared.core.config import get_settings


@pytest.fixture()
def database(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEDIT_DATABASE_URL", f"sqlite:///{tmp_path / 'jobs.db'}")
    monkeypatch.setenv("FACEDIT_WEBHOOK_SECRET", "server secret")
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_keys_create_list_revoke(database) -> None:
    upgraded = _run("db", "upgrade")
    assert upgraded.exit_code == 0 and "database at revision" in upgraded.output
    assert _run("db", "upgrade").exit_code == 0  # again: nothing to do

    refused = _run("keys", "create", "alice[admin]")
    assert refused.exit_code == 2 and "got 'alice[admin]'" in refused.output  # not markup

    created = _run("keys", "create", "alice", "--name", "laptop[work]")
    assert created.exit_code == 0, created.output
    fields = dict(line.split(":", 1) for line in created.output.splitlines() if ":" in line)
    key_id, key = fields["key id"].strip(), fields["api key"].strip()
    assert fields["owner"].strip() == "alice"
    assert "webhook signing secret" in fields and "cannot be shown again" in created.output

    listing = _run("keys", "list", "--owner", "alice")
    assert listing.exit_code == 0 and key_id in listing.output and key not in listing.output
    assert "laptop[work]" in listing.output
    assert _run("keys", "revoke", key_id).exit_code == 0
    assert key_id not in _run("keys", "list", "--no-revoked").output
    again = _run("keys", "revoke", key_id)
    assert again.exit_code == 1 and "no live key" in again.output
