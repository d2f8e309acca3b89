"""Retention as operators run it: the `facedit gc` command on the embedded store (SQLite and a
local folder, what `facedit run` uses), and the workers' periodic collection, elected through
a real Redis so that one worker per interval collects."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facedit.cli import app
from shared.core.config import Settings, get_settings
from shared.core.storage import open_storage, output_key
from shared.jobs import JobStatus, JobStore, NewJob
from shared.jobs.retention import OUTPUTS_EXPIRED
from workers.sweep import collect_if_due, gc_key

EDITS = [{"attribute": "smile", "strength": 1.0}]
SECOND_IN_DAYS = 1 / 86400


@pytest.fixture()
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The embedded defaults under a temporary data folder; results expire after a second."""
    monkeypatch.setenv("FACEDIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("FACEDIT_DATABASE_URL", raising=False)
    monkeypatch.delenv("FACEDIT_STORAGE_URL", raising=False)
    monkeypatch.setenv("FACEDIT_RETAIN_UPLOADS_DAYS", "0")
    monkeypatch.setenv("FACEDIT_RETAIN_OUTPUTS_DAYS", str(SECOND_IN_DAYS))
    monkeypatch.setenv("FACEDIT_RETAIN_JOBS_DAYS", "0")
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def _succeeded_job(store: JobStore, storage, owner: str = "o") -> tuple[str, list[str]]:
    batch = store.create_batch([NewJob(storage.uri("uploads/o/in.png"), EDITS)], owner=owner)
    job_id = batch.job_ids[0]
    keys = [output_key(batch.id, job_id, name) for name in ("result.png", "mask.png")]
    for key in keys:
        storage.put(key, b"r" * 1000)
    assert store.claim(job_id, "w", 600)
    assert store.succeed(job_id, storage.uri(keys[0]), {"mask": storage.uri(keys[1])})
    return job_id, keys


def test_gc_command_reports_then_removes_expired_results(embedded: Settings) -> None:
    store = JobStore(embedded.database_url)
    store.migrate()
    storage = open_storage(embedded.storage_url)
    job_id, keys = _succeeded_job(store, storage)
    time.sleep(1.2)  # the outputs are now older than FACEDIT_RETAIN_OUTPUTS_DAYS
    running = store.create_batch([NewJob(storage.uri("uploads/o/in.png"), EDITS)], owner="o")
    store.claim(running.job_ids[0], "w", 600)
    partial = output_key(running.id, running.job_ids[0], "result.png")
    storage.put(partial, b"p")

    dry = CliRunner().invoke(app, ["gc", "--dry-run", "--json"], catch_exceptions=False)

    assert dry.exit_code == 0, dry.output
    report = json.loads(dry.output)
    assert report["dry_run"] is True
    assert (report["outputs"]["count"], report["outputs"]["bytes"]) == (2, 2000)
    assert report["results_expired"] == 1
    assert report["cutoffs"]["uploads"] is None and report["cutoffs"]["jobs"] is None
    assert all(storage.exists(key) for key in keys), "a dry run removes nothing"

    done = CliRunner().invoke(app, ["gc"], catch_exceptions=False)

    assert done.exit_code == 0, done.output
    assert "removed 0 upload(s) (0 bytes), 2 output object(s) (2000 bytes)" in done.output
    assert "kept forever (0 days)" in done.output  # uploads and rows: retention 0
    assert not any(storage.exists(key) for key in keys)
    assert storage.exists(partial), "a running job's objects are never touched"
    job = store.get_job(job_id)
    assert job.status is JobStatus.SUCCEEDED and job.stage == OUTPUTS_EXPIRED
    assert job.output_uri is None
    again = CliRunner().invoke(app, ["gc", "--json"], catch_exceptions=False)
    assert json.loads(again.output)["outputs"]["count"] == 0
    store.close()


def test_gc_is_listed_in_the_help() -> None:
    result = CliRunner().invoke(app, ["--help"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "gc" in result.output.split() or " gc " in result.output
    gc_help = CliRunner().invoke(app, ["gc", "--help"], catch_exceptions=False).output
    assert "FACEDIT_RETAIN_OUTPUTS_DAYS" in " ".join(gc_help.split())
    assert "--dry-run" in gc_help


def test_workers_collect_once_per_interval_across_workers(
    sqlite_store: JobStore, redis_url: str, tmp_path: Path
) -> None:
    import redis

    storage = open_storage(f"file://{tmp_path / 'storage'}")
    queue = f"gc-test-{uuid.uuid4().hex[:8]}"
    settings = Settings(queue=queue, broker_url=redis_url, gc_interval_seconds=3600,
                        retain_uploads_days=0, retain_outputs_days=SECOND_IN_DAYS,
                        retain_jobs_days=0, data_dir=tmp_path / "data")
    job_id, keys = _succeeded_job(sqlite_store, storage)
    time.sleep(1.2)
    first, second = (redis.Redis.from_url(redis_url) for _ in range(2))  # two workers
    try:
        made = []

        def make_storage():
            made.append(1)
            return storage

        report = collect_if_due(sqlite_store, first, settings, make_storage)
        assert report is not None and report.outputs.count == 2
        assert not any(storage.exists(key) for key in keys)
        _succeeded_job(sqlite_store, storage)  # more to collect, but not due again yet
        assert collect_if_due(sqlite_store, second, settings, make_storage) is None
        assert collect_if_due(sqlite_store, first, settings, make_storage) is None
        assert made == [1], "the storage is only opened when a collection is due"
        ttl = first.pttl(gc_key(queue))
        assert 3500_000 < ttl <= 3600_000
        off = settings.model_copy(update={"gc_interval_seconds": 0})
        first.delete(gc_key(queue))
        assert collect_if_due(sqlite_store, first, off, make_storage) is None
        assert not first.exists(gc_key(queue))
    finally:
        first.delete(gc_key(queue))
        first.close()
        second.close()
