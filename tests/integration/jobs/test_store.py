"""The job store: creating batches, the state machine, leases, idempotency keys and claiming
under concurrency, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.core.errors import IdempotencyConflict, InvalidEditRequest
from shared.jobs import TERMINAL_STATUSES, WORKER_LOST, JobStatus, JobStore, NewJob
from shared.jobs.records import unstarted
from tests.integration.jobs.helpers import EDITS, LEASE, job_in, new_jobs

REPO_ROOT = Path(__file__).resolve().parents[3]


# -- creating --------------------------------------------------------------------------------


def test_create_batch_and_read_back(store: JobStore) -> None:
    batch = store.create_batch(
        new_jobs(3, options={"suppressor": "maresunet"}, max_attempts=5),
        owner="key-a",
        options={"paste_back": True},
        callback_url="https://example.com/hook",
    )
    assert len(batch.id) == 32 and len(batch.job_ids) == 3
    assert store.get_batch(batch.id) == batch
    assert batch.options == {"paste_back": True}
    assert batch.callback_url == "https://example.com/hook"
    assert batch.created_at.tzinfo is not None

    jobs = store.list_jobs(batch.id)
    assert [job.id for job in jobs] == list(batch.job_ids)
    assert [job.input_name for job in jobs] == ["0.png", "1.png", "2.png"]
    first = jobs[0]
    assert first.status == JobStatus.QUEUED and not first.is_terminal
    assert first.edits == EDITS
    assert first.options == {"suppressor": "maresunet"}
    assert (first.owner, first.attempts, first.max_attempts) == ("key-a", 0, 5)
    assert (first.progress, first.stage, first.worker_id, first.output_uri) == (
        0.0,
        None,
        None,
        None,
    )
    assert first.intermediates == {} and first.metrics == {}
    assert first.created_at == first.updated_at == batch.created_at
    assert store.get_job(first.id) == first
    assert store.get_job("0" * 32) is None and store.get_batch("0" * 32) is None


def test_edits_are_stored_in_their_canonical_form(store: JobStore) -> None:
    edits = [{"attribute": "Smile", "strength": 2}, {"attribute": "age", "sweep": {
        "start": -1, "end": 1, "steps": 3}, "layers": (0, 6)}]  # fmt: skip
    job_id = store.create_batch([NewJob("file:///a.png", edits=edits)]).job_ids[0]
    job = store.get_job(job_id)
    assert job is not None
    assert job.edits == [
        {"attribute": "smile", "strength": 2.0},
        {"attribute": "age", "sweep": {"start": -1.0, "end": 1.0, "steps": 3}, "layers": [0, 6]},
    ]


def test_records_are_frozen(store: JobStore) -> None:
    job = job_in(store, JobStatus.QUEUED)
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.status = JobStatus.RUNNING  # type: ignore[misc]


def test_bad_requests_are_refused(store: JobStore) -> None:
    with pytest.raises(ValueError, match="jobs"):
        store.create_batch([])
    bad_edits: list[Any] = [
        "age",
        [{"strength": 1}],
        [{"attribute": "", "strength": 1}],
        [{"attribute": "age", "strength": "strong"}],
        [{"attribute": "age", "strength": float("nan")}],
        [{"attribute": "age", "strength": True}],
        [{"attribute": "age", "strength": 1, "layers": "0-6"}],
        [{"attribute": "age", "strength": 1, "layers": [0.5]}],
        ["age"],
        [{"attribute": "age", "sweep": {"start": 0, "end": 1, "steps": 3}},
         {"attribute": "smile", "sweep": {"start": 0, "end": 1, "steps": 3}}],
    ]  # fmt: skip
    for edits in bad_edits:
        with pytest.raises(InvalidEditRequest, match=r"jobs\[0\]\.edits"):
            store.create_batch([NewJob("file:///a.png", edits=edits)])
    with pytest.raises(ValueError, match=r"jobs\[1\]\.options"):
        store.create_batch(
            [NewJob("file:///a.png"), NewJob("file:///b.png", options={"x": {1, 2}})]
        )
    with pytest.raises(ValueError, match="max_attempts"):
        store.create_batch([NewJob("file:///a.png", max_attempts=0)])
    with pytest.raises(ValueError, match="input_uri"):
        store.create_batch([NewJob("")])
    with pytest.raises(ValueError, match="owner"):
        store.create_batch(new_jobs(1), owner="")
    # Nothing was written by the refused requests.
    assert store.claim_next(10, "w", LEASE) == []


# -- transitions: every operation from every state -------------------------------------------

OPERATIONS: dict[
    str, tuple[Callable[[JobStore, str], object], set[JobStatus], JobStatus | None]
] = {
    # name: (call, states it is legal from, status afterwards (None: unchanged))
    "claim": (lambda s, j: s.claim(j, "w2", LEASE), {JobStatus.QUEUED}, JobStatus.RUNNING),
    "heartbeat": (lambda s, j: s.heartbeat(j, "w1", LEASE), {JobStatus.RUNNING}, None),
    "set_progress": (lambda s, j: s.set_progress(j, 0.5, "invert"), {JobStatus.RUNNING}, None),
    "succeed": (
        lambda s, j: s.succeed(j, "file:///o.png"),
        {JobStatus.RUNNING},
        JobStatus.SUCCEEDED,
    ),
    "fail": (
        lambda s, j: s.fail(j, "no_face_found", "no face"),
        {JobStatus.QUEUED, JobStatus.RUNNING},
        JobStatus.FAILED,
    ),
    "cancel": (
        lambda s, j: s.cancel(j),
        {JobStatus.QUEUED, JobStatus.RUNNING},
        JobStatus.CANCELLED,
    ),
    "retry": (lambda s, j: s.retry(j), {JobStatus.FAILED}, JobStatus.QUEUED),
    "release": (
        lambda s, j: s.release(j, "storage_unavailable", "S3 down"),
        {JobStatus.RUNNING},
        JobStatus.QUEUED,
    ),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_every_transition_from_every_state(store: JobStore, operation: str) -> None:
    call, legal_from, status_after = OPERATIONS[operation]
    for status in JobStatus:
        before = job_in(store, status)
        won = call(store, before.id)
        after = store.get_job(before.id)
        assert after is not None
        if status in legal_from:
            assert won, (operation, status)
            assert after.status == (status_after or status), (operation, status)
            assert after.updated_at >= before.updated_at
        else:
            assert not won, (operation, status)
            assert after == before, (operation, status)  # nothing at all changed


def test_claim_then_succeed_records_everything(store: JobStore) -> None:
    job = job_in(store, JobStatus.QUEUED)
    start = datetime.now(UTC)
    claimed = store.claim(job.id, "worker-1", 120)
    assert claimed is not None
    assert (claimed.status, claimed.worker_id, claimed.attempts) == ("running", "worker-1", 1)
    assert claimed.started_at is not None and claimed.started_at >= start
    assert claimed.lease_expires_at is not None
    assert timedelta(seconds=119) < claimed.lease_expires_at - start < timedelta(seconds=125)
    assert store.claim(job.id, "worker-2", 120) is None

    assert store.set_progress(job.id, 0.25, "invert", worker_id="worker-1")
    assert not store.set_progress(job.id, 0.5, "edit", worker_id="worker-2")
    progressing = store.get_job(job.id)
    assert progressing is not None
    assert (progressing.progress, progressing.stage) == (0.25, "invert")

    assert not store.succeed(job.id, "file:///o.png", worker_id="worker-2")
    assert store.succeed(
        job.id,
        "s3://b/outputs/x/y/result.png",
        {"mask": "s3://b/outputs/x/y/mask.png"},
        input_sha256="ab" * 32,
        metrics={"seconds": 1.5},
        worker_id="worker-1",
    )
    done = store.get_job(job.id)
    assert done is not None and done.is_terminal and done.status in TERMINAL_STATUSES
    assert done.output_uri == "s3://b/outputs/x/y/result.png"
    assert done.intermediates == {"mask": "s3://b/outputs/x/y/mask.png"}
    assert done.input_sha256 == "ab" * 32
    assert done.metrics == {"seconds": 1.5}
    assert (done.progress, done.stage, done.lease_expires_at) == (1.0, "done", None)
    assert done.finished_at is not None and done.finished_at >= done.started_at  # type: ignore[operator]


def test_heartbeat_extends_only_its_own_lease(store: JobStore) -> None:
    job = job_in(store, JobStatus.RUNNING, worker="w1")
    assert not store.heartbeat(job.id, "w2", 600)
    assert store.heartbeat(job.id, "w1", 600)
    after = store.get_job(job.id)
    assert after is not None and after.lease_expires_at is not None
    assert job.lease_expires_at is not None
    assert after.lease_expires_at - job.lease_expires_at > timedelta(seconds=500)
    store.cancel(job.id)
    assert not store.heartbeat(job.id, "w1", 600)


def test_fail_and_retry(store: JobStore) -> None:
    job = job_in(store, JobStatus.RUNNING)
    assert not store.fail(job.id, "invalid_image", "bad", worker_id="someone-else")
    assert store.fail(job.id, "invalid_image", "not a PNG or JPEG", worker_id="w1")
    failed = store.get_job(job.id)
    assert failed is not None
    assert (failed.error_code, failed.error_message) == ("invalid_image", "not a PNG or JPEG")
    assert failed.finished_at is not None and failed.lease_expires_at is None

    assert store.retry(job.id)
    retried = store.get_job(job.id)
    assert retried is not None
    # A retry is a fresh start: attempts reset so the job gets max_attempts tries again.
    assert (retried.status, retried.attempts, retried.error_code, retried.error_message) == (
        "queued",
        0,
        None,
        None,
    )
    assert (retried.started_at, retried.finished_at, retried.worker_id) == (None, None, None)
    assert store.claim(job.id, "w3", LEASE) is not None


def test_retry_gives_back_the_state_of_a_new_job(store: JobStore) -> None:
    new = job_in(store, JobStatus.QUEUED)
    assert store.claim(new.id, "w1", LEASE) is not None
    assert store.set_progress(new.id, 0.5, "edit")
    assert store.release(new.id, "storage_unavailable", "S3 down") == JobStatus.QUEUED
    assert store.claim(new.id, "w1", LEASE) is not None
    assert store.fail(new.id, "invalid_image", "bad")
    assert store.retry(new.id)
    retried = store.get_job(new.id)
    assert retried is not None
    state = list(unstarted())
    assert [getattr(retried, name) for name in state] == [getattr(new, name) for name in state]


def test_release_requeues_until_attempts_run_out(store: JobStore) -> None:
    job = job_in(store, JobStatus.QUEUED, max_attempts=2)
    assert store.claim(job.id, "w1", LEASE) is not None
    assert store.release(job.id, "storage_unavailable", "S3 down", worker_id="w2") is None
    assert store.release(job.id, "storage_unavailable", "S3 down", worker_id="w1") == "queued"
    requeued = store.get_job(job.id)
    assert requeued is not None
    assert (requeued.status, requeued.attempts, requeued.worker_id) == ("queued", 1, None)
    assert requeued.error_code == "storage_unavailable"

    assert store.claim(job.id, "w1", LEASE) is not None
    assert store.release(job.id, "storage_unavailable", "S3 down again") == JobStatus.FAILED
    failed = store.get_job(job.id)
    assert failed is not None
    assert (failed.status, failed.attempts, failed.error_message) == ("failed", 2, "S3 down again")


def test_cancel_batch_and_is_cancelled(store: JobStore) -> None:
    batch = store.create_batch(new_jobs(4), owner="key-a")
    a, b, c, _ = batch.job_ids
    store.claim(a, "w", LEASE)
    store.claim(b, "w", LEASE)
    store.succeed(b, "file:///o.png")
    store.fail(c, "invalid_image", "bad")
    assert not store.is_cancelled(a)
    assert store.cancel_batch(batch.id, owner="key-b") == 0
    assert store.cancel_batch(batch.id, owner="key-a") == 2  # the running and the queued one
    assert store.is_cancelled(a)
    assert not store.is_cancelled(b) and not store.is_cancelled("0" * 32)
    assert store.batch_counts(batch.id) == {
        "queued": 0,
        "running": 0,
        "succeeded": 1,
        "failed": 1,
        "cancelled": 2,
    }
    assert store.cancel_batch(batch.id) == 0


def test_transition_arguments_are_checked(store: JobStore) -> None:
    job = job_in(store, JobStatus.RUNNING)
    for progress in (-0.1, 1.5, float("nan"), True):
        with pytest.raises(ValueError, match="progress"):
            store.set_progress(job.id, progress, "edit")
    for lease in (0, -5, float("inf")):
        with pytest.raises(ValueError, match="lease_seconds"):
            store.heartbeat(job.id, "w1", lease)
    with pytest.raises(ValueError, match="worker_id"):
        store.claim(job.id, "", LEASE)
    with pytest.raises(ValueError, match="error_code"):
        store.fail(job.id, "", "message")
    with pytest.raises(ValueError, match="output_uri"):
        store.succeed(job.id, "")
    with pytest.raises(ValueError, match="now"):
        store.requeue_expired(datetime(2030, 1, 1))
    unchanged = store.get_job(job.id)
    assert unchanged == job


# -- leases -----------------------------------------------------------------------------------


def test_requeue_expired(store: JobStore) -> None:
    fresh = job_in(store, JobStatus.RUNNING)
    expiring = job_in(store, JobStatus.RUNNING, max_attempts=3)
    exhausted = job_in(store, JobStatus.RUNNING, max_attempts=1)
    queued = job_in(store, JobStatus.QUEUED)
    store.heartbeat(fresh.id, "w1", 3600)
    later = datetime.now(UTC) + timedelta(seconds=LEASE + 10)

    assert store.requeue_expired(now=later) == (1, 1)

    statuses = {j.id: store.get_job(j.id) for j in (fresh, expiring, exhausted, queued)}
    assert statuses[fresh.id].status == "running"  # type: ignore[union-attr]
    requeued = statuses[expiring.id]
    assert requeued is not None
    assert (requeued.status, requeued.worker_id, requeued.lease_expires_at) == (
        "queued",
        None,
        None,
    )
    assert requeued.attempts == 1
    lost = statuses[exhausted.id]
    assert lost is not None
    assert (lost.status, lost.error_code) == ("failed", WORKER_LOST)
    assert lost.finished_at == later
    assert statuses[queued.id].status == "queued"  # type: ignore[union-attr]
    assert store.requeue_expired(now=later) == (0, 0)
    assert store.requeue_expired() == (0, 0)  # nothing has expired yet in real time


def test_lease_expiry_cycle_ends_in_worker_lost(store: JobStore) -> None:
    job = job_in(store, JobStatus.QUEUED, max_attempts=2)
    now = datetime.now(UTC)
    for attempt in (1, 2):
        claimed = store.claim(job.id, f"w{attempt}", LEASE)
        assert claimed is not None and claimed.attempts == attempt
        now += timedelta(seconds=LEASE * 2)
        expected = (1, 0) if attempt == 1 else (0, 1)
        assert store.requeue_expired(now=now) == expected
    final = store.get_job(job.id)
    assert final is not None
    assert (final.status, final.error_code, final.attempts) == ("failed", WORKER_LOST, 2)
    # The first worker, back from the dead, can no longer report anything.
    assert not store.succeed(job.id, "file:///late.png", worker_id="w1")
    assert not store.heartbeat(job.id, "w1", LEASE)


# -- idempotency and owners --------------------------------------------------------------------


def _job_count(store: JobStore) -> int:
    return sum(store.count_by_status().values())


def test_idempotency_keys(store: JobStore) -> None:
    first = store.create_batch(new_jobs(2), owner="key-a", idempotency_key="k1", request_hash="h1")
    again = store.create_batch(new_jobs(2), owner="key-a", idempotency_key="k1", request_hash="h1")
    assert again == first
    assert _job_count(store) == 2
    with pytest.raises(IdempotencyConflict, match="k1") as info:
        store.create_batch(new_jobs(1), owner="key-a", idempotency_key="k1", request_hash="h2")
    assert info.value.code == "idempotency_conflict"
    other_owner = store.create_batch(
        new_jobs(1), owner="key-b", idempotency_key="k1", request_hash="h1"
    )
    assert other_owner.id != first.id
    anonymous = store.create_batch(new_jobs(1), idempotency_key="k1", request_hash="h1")
    assert store.create_batch(new_jobs(1), idempotency_key="k1", request_hash="h1") == anonymous
    assert anonymous.id not in (first.id, other_owner.id)
    no_key = [store.create_batch(new_jobs(1)).id for _ in range(2)]
    assert no_key[0] != no_key[1]
    assert _job_count(store) == 2 + 1 + 1 + 2


def test_concurrent_idempotent_creates_make_one_batch(store: JobStore) -> None:
    threads = 6
    barrier = threading.Barrier(threads)

    def create(_: int) -> str:
        barrier.wait()
        return store.create_batch(
            new_jobs(2), owner="key-a", idempotency_key="race", request_hash="same"
        ).id

    with ThreadPoolExecutor(threads) as pool:
        ids = set(pool.map(create, range(threads)))
    assert len(ids) == 1
    assert _job_count(store) == 2


def test_transitions_are_scoped_to_their_owner(store: JobStore) -> None:
    mine = store.create_batch(new_jobs(2), owner="key-a")
    job_id, other = mine.job_ids
    assert not store.cancel(job_id, owner="key-b")
    assert store.cancel(job_id, owner="key-a")
    store.fail(other, "invalid_image", "bad")
    assert not store.retry(other, owner="key-b")
    assert store.retry(other, owner="key-a")


# -- claiming under concurrency ---------------------------------------------------------------


def test_claim_next_takes_oldest_first(store: JobStore) -> None:
    old = store.create_batch(new_jobs(2))
    new = store.create_batch(new_jobs(2))
    assert store.claim_next(1, "w", LEASE, batch_id=new.id)[0].id == new.job_ids[0]
    claimed = store.claim_next(2, "w", LEASE)
    assert [job.id for job in claimed] == list(old.job_ids)
    assert all(job.status == "running" and job.attempts == 1 for job in claimed)
    assert [job.id for job in store.claim_next(5, "w", LEASE)] == [new.job_ids[1]]
    assert store.claim_next(5, "w", LEASE) == []


def test_many_threads_race_for_one_job(store: JobStore) -> None:
    threads = 8
    for _ in range(3):
        job = job_in(store, JobStatus.QUEUED)
        barrier = threading.Barrier(threads)

        def race(worker: int, job_id: str = job.id, barrier: threading.Barrier = barrier) -> bool:
            barrier.wait()
            return store.claim(job_id, f"w{worker}", LEASE) is not None

        with ThreadPoolExecutor(threads) as pool:
            wins = list(pool.map(race, range(threads)))
        assert wins.count(True) == 1
        claimed = store.get_job(job.id)
        assert claimed is not None and claimed.attempts == 1


def test_concurrent_claim_next_never_double_claims(store: JobStore) -> None:
    batch = store.create_batch(new_jobs(40))
    threads = 6
    barrier = threading.Barrier(threads)

    def drain(worker: int) -> list[str]:
        barrier.wait()
        claimed: list[str] = []
        while jobs := store.claim_next(3, f"w{worker}", LEASE):
            claimed += [job.id for job in jobs]
        return claimed

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(drain, range(threads)))
    claimed = [job_id for result in results for job_id in result]
    assert len(claimed) == len(set(claimed)) == 40
    assert set(claimed) == set(batch.job_ids)
    assert store.batch_counts(batch.id)["running"] == 40
    assert all(job.attempts == 1 for job in store.list_jobs(batch.id))


# Run in a fresh interpreter: claim until nothing is left, print the claimed ids as JSON.
# It waits for "go" on stdin, so that every process is ready before any claims.
DRAIN_SCRIPT = """
import json, sys
from shared.jobs import JobStore
store = JobStore(sys.argv[1])
store.engine.connect().close()
print("ready", flush=True)
sys.stdin.readline()
claimed = []
while jobs := store.claim_next(2, sys.argv[2], 60):
    claimed += [job.id for job in jobs]
print(json.dumps(claimed), flush=True)
"""


def test_processes_claim_next_never_double_claims(store: JobStore) -> None:
    batch = store.create_batch(new_jobs(30))
    database_url = store.url.render_as_string(hide_password=False)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", DRAIN_SCRIPT, database_url, f"p{i}"],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        outputs = [worker.communicate(timeout=60)[0] for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    assert [worker.returncode for worker in workers] == [0, 0, 0]
    claimed = [job_id for output in outputs for job_id in json.loads(output)]
    assert len(claimed) == len(set(claimed)) == 30
    assert set(claimed) == set(batch.job_ids)


def test_a_batch_records_its_progress_and_reads_its_cancellations_in_one_statement(
    store: JobStore,
) -> None:
    running = [job_in(store, JobStatus.RUNNING) for _ in range(3)]
    cancelled = job_in(store, JobStatus.CANCELLED)
    ids = [job.id for job in running] + [cancelled.id]
    statements: list[str] = []

    from sqlalchemy import event

    def count(conn, cursor, statement, *args) -> None:
        if statement.lstrip().upper().startswith(("UPDATE", "SELECT")):
            statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        assert store.set_progress_many(ids, 0.6, "mask") == 3  # the cancelled one untouched
        assert store.cancelled_among(ids) == {cancelled.id}
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert len(statements) == 2, statements
    for job in running:
        row = store.get_job(job.id)
        assert (row.progress, row.stage) == (0.6, "mask")
    assert store.get_job(cancelled.id).stage != "mask"
    assert store.set_progress_many([], 0.5, "edit") == 0 and store.cancelled_among([]) == set()
    with pytest.raises(ValueError):
        store.set_progress_many(ids, 1.5, "edit")
