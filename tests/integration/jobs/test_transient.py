"""Transient failures (storage, database, broker down): a job waits out a backoff without
using up an attempt, is retried until the budget is spent, and nothing claims it early."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from shared.jobs import JobStatus, JobStore
from shared.jobs.store import jobs_table, retry_delay
from tests.integration.jobs.helpers import LEASE, job_in, new_jobs


def _postpone(store: JobStore, job_id: str, **kwargs: float) -> JobStatus | None:
    options = {"first_delay_s": 30.0, "budget_s": 900.0, **kwargs}
    return store.postpone(job_id, "storage_unavailable", "S3 is down", worker_id="w1",
                          **options)


def test_a_postponed_job_waits_and_keeps_its_attempts(store: JobStore) -> None:
    job = job_in(store, JobStatus.RUNNING)
    assert job.attempts == 1
    before = datetime.now(UTC)
    assert _postpone(store, job.id) == JobStatus.QUEUED
    after = store.get_job(job.id)
    assert after.status == JobStatus.QUEUED and after.attempts == 0 and after.retries == 1
    assert after.error_code == "storage_unavailable" and after.worker_id is None
    # first delay 30 s, times a jitter in [0.5, 1]
    assert before + timedelta(seconds=14.9) <= after.not_before <= before + timedelta(seconds=31)
    assert after.retry_until >= before + timedelta(seconds=899)
    assert store.due_jobs() == 0
    assert store.claim_next(10, "w2", LEASE) == []  # not before its time
    with store.db.transaction(write=True) as connection:
        connection.execute(update(jobs_table).values(not_before=datetime.now(UTC)))
    assert store.due_jobs() == 1
    [claimed] = store.claim_next(10, "w2", LEASE)
    assert claimed.id == job.id and claimed.attempts == 1 and claimed.retries == 1


def test_other_queued_jobs_are_claimed_while_one_waits(store: JobStore) -> None:
    waiting = job_in(store, JobStatus.RUNNING)
    _postpone(store, waiting.id)
    fresh = store.create_batch(new_jobs(2)).job_ids
    claimed = store.claim_next(10, "w2", LEASE)
    assert tuple(j.id for j in claimed) == fresh
    assert store.count_by_status()[JobStatus.QUEUED] == 1 and store.due_jobs() == 0


def test_the_budget_is_time_not_attempts(store: JobStore) -> None:
    job = job_in(store, JobStatus.RUNNING, max_attempts=1)
    for _ in range(5):  # many more transient failures than attempts: still queued
        assert _postpone(store, job.id, first_delay_s=0.01) == JobStatus.QUEUED
        [again] = _claim_when_due(store)
        assert again.id == job.id
    assert store.get_job(job.id).retries == 5
    with store.db.transaction(write=True) as connection:  # the budget ran out meanwhile
        connection.execute(update(jobs_table).values(
            retry_until=datetime.now(UTC) - timedelta(seconds=1)))
    assert _postpone(store, job.id) == JobStatus.FAILED
    failed = store.get_job(job.id)
    assert failed.status == JobStatus.FAILED and failed.error_code == "storage_unavailable"
    assert "still failing after 900 s of retries" in failed.error_message


def test_postpone_only_touches_the_workers_running_job(store: JobStore) -> None:
    queued = job_in(store, JobStatus.QUEUED)
    assert _postpone(store, queued.id) is None
    other = job_in(store, JobStatus.RUNNING, worker="w9")
    assert _postpone(store, other.id) is None
    assert store.get_job(other.id).status == JobStatus.RUNNING


def test_retry_starts_afresh(store: JobStore) -> None:
    job = job_in(store, JobStatus.RUNNING)
    _postpone(store, job.id)
    [claimed] = _claim_when_due(store)
    store.fail(claimed.id, "invalid_image", "bad")
    assert store.retry(job.id)
    fresh = store.get_job(job.id)
    assert (fresh.retries, fresh.not_before, fresh.retry_until) == (0, None, None)


@pytest.mark.parametrize("retries", range(8))
def test_backoff_doubles_with_jitter_and_a_cap(retries: int) -> None:
    delays = [retry_delay(retries, 2.0, 60.0) for _ in range(200)]
    nominal = min(60.0, 2.0 * 2**retries)
    assert all(nominal * 0.5 <= d <= nominal for d in delays)
    assert max(delays) - min(delays) > nominal * 0.2  # really jittered


def _claim_when_due(store: JobStore) -> list:
    with store.db.transaction(write=True) as connection:
        connection.execute(update(jobs_table).values(not_before=None))
    return store.claim_next(10, "w1", LEASE)
