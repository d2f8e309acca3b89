"""Retention (shared/jobs/retention.py) on each job database (SQLite, PostgreSQL) with each
storage (a local folder, SeaweedFS's S3): what expires goes, and nothing a queued or
running job needs is ever touched.

Objects cannot be made older on S3, so these tests move the clock instead: ``now`` lies
``AHEAD`` in the future, every object is then that old, and job ages are set by writing
``finished_at`` (a job "finished long ago" finished before the cutoff, a "recent" one after).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from shared.core.storage import Storage, open_storage, output_key
from shared.jobs import Batch, Job, JobStatus, JobStore, NewJob, WebhookDelivery
from shared.jobs.deliveries import WebhookDeliveries
from shared.jobs.retention import OUTPUTS_EXPIRED, Retention, collect_garbage

AHEAD = timedelta(days=40)
LEASE = 600.0
EDITS = [{"attribute": "smile", "strength": 1.0}]


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return open_storage(f"file://{tmp_path / 'storage'}")
    return request.getfixturevalue("s3_storage")


def _later() -> datetime:
    return datetime.now(UTC) + AHEAD


def _finished(store: JobStore, job_id: str, when: datetime) -> None:
    with store.engine.begin() as connection:
        connection.execute(update(Job.__table__).where(Job.__table__.c.id == job_id)
                           .values(finished_at=when))


def _job(store: JobStore, storage: Storage, key: str = "uploads/o/in.png",
         callback_url: str | None = None) -> tuple[str, str]:
    batch = store.create_batch([NewJob(storage.uri(key), EDITS)], owner="o",
                               callback_url=callback_url)
    return batch.id, batch.job_ids[0]


def _store_results(storage: Storage, batch_id: str, job_id: str) -> list[str]:
    keys = [output_key(batch_id, job_id, name) for name in ("result.png", "mask.png",
                                                              "latent.pt")]
    for key in keys:
        storage.put(key, b"r" * 100)
    return keys


def _succeed(store: JobStore, storage: Storage, batch_id: str, job_id: str) -> list[str]:
    keys = _store_results(storage, batch_id, job_id)
    assert store.claim(job_id, "w", LEASE)
    assert store.succeed(job_id, storage.uri(keys[0]), {"mask": storage.uri(keys[1])},
                         latent_uri=storage.uri(keys[2]))
    return keys


def _keys(storage: Storage) -> set[str]:
    return {info.key for info in storage.list()}


def test_outputs_of_long_finished_jobs_go_and_the_rest_stay(
    store: JobStore, storage: Storage
) -> None:
    now = _later()
    long_ago, recently = now - timedelta(days=31), now - timedelta(days=1)
    old_done = _job(store, storage)
    old_keys = _succeed(store, storage, *old_done)
    _finished(store, old_done[1], long_ago)
    new_done = _job(store, storage)
    new_keys = _succeed(store, storage, *new_done)
    _finished(store, new_done[1], recently)
    # failed long ago, with what an attempt left behind
    failed = _job(store, storage)
    failed_keys = _store_results(storage, *failed)
    store.fail(failed[1], "invalid_image", "bad")
    _finished(store, failed[1], long_ago)
    # a requeued job keeps what its first attempt stored; a running one its partial results
    queued = _job(store, storage)
    queued_keys = _store_results(storage, *queued)
    running = _job(store, storage)
    running_keys = _store_results(storage, *running)
    store.claim(running[1], "w", LEASE)
    orphan = ["outputs/gone-batch/gone-job/result.png"]  # its rows were removed
    others = ["outputs/notes.txt", "inputs/sha256/ab/x.png", "uploads-not/x.png"]
    for key in orphan + others:
        storage.put(key, b"o")
    retention = Retention(outputs_days=30)

    dry = collect_garbage(store, storage, retention, now=now, dry_run=True)

    expired = old_keys + failed_keys + orphan
    assert (dry.outputs.count, dry.outputs.bytes) == (len(expired), 100 * 6 + 1)
    assert dry.results_expired == 1 and dry.dry_run
    assert _keys(storage) >= set(expired)  # a dry run removes nothing
    assert store.get_job(old_done[1]).output_uri is not None

    report = collect_garbage(store, storage, retention, now=now)

    assert report.to_dict() | {"dry_run": True} == dry.to_dict()
    assert _keys(storage) == set(new_keys + queued_keys + running_keys + others)
    job = store.get_job(old_done[1])
    assert job.status is JobStatus.SUCCEEDED and job.stage == OUTPUTS_EXPIRED
    assert (job.output_uri, job.outputs, job.intermediates, job.latent_uri) == (None, [], {}, None)
    assert store.get_job(new_done[1]).output_uri == storage.uri(new_keys[0])
    assert store.get_job(failed[1]).status is JobStatus.FAILED
    # Nothing left to do: a second collection removes nothing.
    assert not collect_garbage(store, storage, retention, now=now).removed_anything


def test_results_stored_elsewhere_are_neither_removed_nor_marked(
    store: JobStore, storage: Storage, tmp_path: Path
) -> None:
    """`facedit run` keeps results in its --out folder: another storage than gc's."""
    elsewhere = open_storage(f"file://{tmp_path / 'out'}")
    batch_id, job_id = _job(store, storage)
    keys = _succeed(store, elsewhere, batch_id, job_id)
    _finished(store, job_id, _later() - timedelta(days=31))
    report = collect_garbage(store, storage, Retention(outputs_days=30), now=_later())
    assert report.results_expired == 0 and report.outputs.count == 0
    assert store.get_job(job_id).output_uri == elsewhere.uri(keys[0])
    assert _keys(elsewhere) == set(keys)


def test_results_removed_by_a_lifecycle_rule_are_marked(store: JobStore, storage: Storage) -> None:
    batch_id, job_id = _job(store, storage)
    keys = _succeed(store, storage, batch_id, job_id)
    storage.delete_many(keys)  # as an S3 lifecycle rule would
    _finished(store, job_id, _later() - timedelta(days=31))
    report = collect_garbage(store, storage, Retention(outputs_days=30), now=_later())
    assert (report.outputs.count, report.results_expired) == (0, 1)
    assert store.get_job(job_id).stage == OUTPUTS_EXPIRED


def test_uploads_that_unfinished_jobs_read_survive(store: JobStore, storage: Storage) -> None:
    for name in ("queued", "running", "succeeded", "loose"):
        storage.put(f"uploads/o/{name}.png", b"u" * 10)
    _job(store, storage, "uploads/o/queued.png")
    _, running = _job(store, storage, "uploads/o/running.png")
    store.claim(running, "w", LEASE)
    done = _job(store, storage, "uploads/o/succeeded.png")
    _succeed(store, storage, *done)
    outputs_before = _keys(storage) - {k for k in _keys(storage) if k.startswith("uploads/")}

    recent = collect_garbage(store, storage, Retention(uploads_days=41), now=_later())
    assert recent.uploads.count == 0 and len(_keys(storage)) == 4 + len(outputs_before)

    report = collect_garbage(store, storage, Retention(uploads_days=7), now=_later())

    assert (report.uploads.count, report.uploads.bytes, report.uploads_in_use) == (2, 20, 2)
    assert _keys(storage) == {"uploads/o/queued.png", "uploads/o/running.png"} | outputs_before


def test_finished_batches_go_with_their_jobs(store: JobStore, storage: Storage) -> None:
    now = _later()
    long_ago = now - timedelta(days=91)
    # A batch whose jobs all finished long ago: removed, its finished delivery too.
    gone = store.create_batch([NewJob(storage.uri("uploads/o/a.png"), EDITS)] * 3,
                              callback_url="https://example.com/hook")
    first, second, third = gone.job_ids
    store.claim(first, "w", LEASE)
    store.succeed(first, storage.uri(output_key(gone.id, first)))
    store.fail(second, "invalid_image", "bad")
    store.cancel(third)
    deliveries = WebhookDeliveries(store)
    delivered = deliveries.announce_if_complete(gone.id)
    deliveries.record_attempt(delivered, delivered=True, response_status=200, error=None,
                              give_up=False)
    # One still queued keeps its whole batch; one finished recently keeps its batch.
    waiting = store.create_batch([NewJob(storage.uri("uploads/o/b.png"), EDITS)] * 2)
    store.fail(waiting.job_ids[0], "invalid_image", "bad")
    fresh = store.create_batch([NewJob(storage.uri("uploads/o/c.png"), EDITS)] * 2)
    store.cancel(fresh.job_ids[0])
    store.cancel(fresh.job_ids[1])
    pending = store.create_batch([NewJob(storage.uri("uploads/o/d.png"), EDITS)],
                                 callback_url="https://example.com/hook")
    store.cancel(pending.job_ids[0])
    assert deliveries.announce_if_complete(pending.id)  # pending: never removed
    for job_id in (*gone.job_ids, waiting.job_ids[0], pending.job_ids[0]):
        _finished(store, job_id, long_ago)
    _finished(store, fresh.job_ids[0], long_ago)
    _finished(store, fresh.job_ids[1], now - timedelta(days=1))
    with store.engine.begin() as connection:  # every batch was submitted long ago
        connection.execute(update(Batch.__table__).values(created_at=long_ago))
        connection.execute(update(WebhookDelivery.__table__).values(updated_at=long_ago))
    retention = Retention(jobs_days=90)

    dry = collect_garbage(store, storage, retention, now=now, dry_run=True)
    assert (dry.batches, dry.jobs, dry.webhook_deliveries) == (2, 4, 1)
    assert store.get_batch(gone.id) is not None

    report = collect_garbage(store, storage, retention, now=now)

    assert (report.batches, report.jobs, report.webhook_deliveries) == (2, 4, 1)
    assert store.get_batch(gone.id) is None and store.get_batch(pending.id) is None
    assert all(store.get_job(j) is None for j in gone.job_ids)
    assert deliveries.get(delivered) is None
    assert [d.status for d in deliveries.for_batch(pending.id)] == ["pending"]
    for kept in (waiting, fresh):
        assert store.get_batch(kept.id).job_ids == kept.job_ids
    assert store.get_job(waiting.job_ids[1]).status is JobStatus.QUEUED


def test_zero_days_keeps_everything_forever(store: JobStore, storage: Storage) -> None:
    storage.put("uploads/o/a.png", b"u")
    batch_id, job_id = _job(store, storage)
    _succeed(store, storage, batch_id, job_id)
    _finished(store, job_id, datetime(2000, 1, 1, tzinfo=UTC))
    before = _keys(storage)
    report = collect_garbage(store, storage, Retention(), now=_later() + timedelta(days=9999))
    assert not report.removed_anything and _keys(storage) == before
    assert store.get_job(job_id).output_uri is not None


def test_retention_arguments_are_checked(store: JobStore, storage: Storage) -> None:
    for bad in ({"uploads_days": -1}, {"jobs_days": float("nan")}, {"outputs_days": True}):
        with pytest.raises(ValueError, match="days"):
            Retention(**bad)
    with pytest.raises(ValueError, match="timezone"):
        collect_garbage(store, storage, Retention(), now=datetime(2030, 1, 1))
