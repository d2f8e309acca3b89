"""Reads: pages of a batch's jobs, owner scoping, the idempotency lookup, the finished jobs
/metrics observes, and the one count by status every caller uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.jobs import JobStatus, JobStore
from shared.jobs.deliveries import WebhookDeliveries
from tests.integration.jobs.helpers import LEASE, job_in, new_jobs

ZEROS = {status.value: 0 for status in JobStatus}


def test_list_jobs_pages_and_filters(store: JobStore) -> None:
    batch = store.create_batch(new_jobs(5))
    store.claim(batch.job_ids[1], "w", LEASE)
    store.cancel(batch.job_ids[3])
    assert [j.id for j in store.list_jobs(batch.id, offset=1, limit=2)] == list(batch.job_ids[1:3])
    assert [j.id for j in store.list_jobs(batch.id, status="running")] == [batch.job_ids[1]]
    queued = store.list_jobs(batch.id, status=JobStatus.QUEUED)
    assert [j.id for j in queued] == [batch.job_ids[i] for i in (0, 2, 4)]
    assert store.batch_counts(batch.id) == {
        "queued": 3,
        "running": 1,
        "succeeded": 0,
        "failed": 0,
        "cancelled": 1,
    }
    assert store.batch_counts("0" * 32) == ZEROS
    with pytest.raises(ValueError, match="status"):
        store.list_jobs(batch.id, status="done")
    with pytest.raises(ValueError, match="limit"):
        store.list_jobs(batch.id, limit=0)
    with pytest.raises(ValueError, match="offset"):
        store.list_jobs(batch.id, offset=-1)


def test_reads_are_scoped_to_their_owner(store: JobStore) -> None:
    mine = store.create_batch(new_jobs(2), owner="key-a")
    anonymous = store.create_batch(new_jobs(1))
    job_id = mine.job_ids[0]

    assert store.get_batch(mine.id, owner="key-a") == mine
    assert store.get_batch(mine.id, owner="key-b") is None
    assert store.get_batch(mine.id) == mine  # unscoped: internal callers
    assert store.get_batch(anonymous.id, owner="key-a") is None
    assert store.get_job(job_id, owner="key-a") is not None
    assert store.get_job(job_id, owner="key-b") is None
    assert store.list_jobs(mine.id, owner="key-b") == []
    assert len(store.list_jobs(mine.id, owner="key-a")) == 2


def test_find_idempotent(store: JobStore) -> None:
    mine = store.create_batch(new_jobs(2), owner="key-a", idempotency_key="k", request_hash="h")
    anonymous = store.create_batch(new_jobs(1), idempotency_key="k", request_hash="h")
    store.create_batch(new_jobs(1), owner="key-a")  # no key
    assert store.find_idempotent("key-a", "k") == mine
    assert store.find_idempotent(None, "k") == anonymous
    assert store.find_idempotent("key-b", "k") is None
    assert store.find_idempotent("key-a", "other") is None


# -- counts by status ---------------------------------------------------------------------------


def test_count_by_status(store: JobStore) -> None:
    assert store.count_by_status() == ZEROS
    first = store.create_batch(new_jobs(3))
    second = store.create_batch(new_jobs(2))
    store.claim(first.job_ids[0], "w", LEASE)
    store.fail(second.job_ids[0], "invalid_image", "bad")

    assert store.count_by_status() == {**ZEROS, "queued": 3, "running": 1, "failed": 1}
    assert store.count_by_status([first.id]) == {**ZEROS, "queued": 2, "running": 1}
    assert store.count_by_status([first.id, second.id]) == store.count_by_status()
    assert store.count_by_status([]) == ZEROS
    assert store.count_by_status(statuses=[JobStatus.QUEUED]) == {**ZEROS, "queued": 3}
    assert store.count_by_status([second.id], statuses=["queued", "running"]) == {
        **ZEROS, "queued": 1,
    }  # fmt: skip
    with pytest.raises(ValueError, match="status"):
        store.count_by_status(statuses=["done"])


class _Redis:
    """The one Redis call the metrics collector makes."""

    def llen(self, _queue: str) -> int:
        return 0


def _jobs_total(store: JobStore) -> dict[str, int]:
    from api.metrics import ApiMetrics

    text = ApiMetrics(store, _Redis(), "q").render().decode()
    lines = [line for line in text.splitlines() if line.startswith("facedit_jobs_total{")]
    return {line.split('"')[1]: int(float(line.split()[-1])) for line in lines}


def test_every_count_by_status_is_the_same_count(store: JobStore) -> None:
    """Batch views, /metrics, webhook completions and the sweep's queue depth all count with
    count_by_status, so they agree."""
    from workers.sweep import queued_jobs

    done = store.create_batch(new_jobs(3), callback_url="https://example.com/hook")
    a, b, c = done.job_ids
    store.claim(a, "w", LEASE)
    store.succeed(a, "file:///o.png")
    store.fail(b, "invalid_image", "bad")
    store.cancel(c)
    open_batch = store.create_batch(new_jobs(2))
    store.claim(open_batch.job_ids[0], "w", LEASE)

    everything = store.count_by_status()
    assert everything == {"queued": 1, "running": 1, "succeeded": 1, "failed": 1, "cancelled": 1}
    assert _jobs_total(store) == everything
    assert queued_jobs(store) == everything["queued"]
    deliveries = WebhookDeliveries(store)
    delivery = deliveries.get(deliveries.announce_if_complete(done.id) or "")
    assert delivery is not None
    assert delivery.payload["counts"] == store.batch_counts(done.id) == store.count_by_status(
        [done.id]
    ) == {**ZEROS, "succeeded": 1, "failed": 1, "cancelled": 1}


# -- finished jobs --------------------------------------------------------------------------------


def test_finished_jobs(store: JobStore) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    succeeded = job_in(store, JobStatus.SUCCEEDED)
    failed = job_in(store, JobStatus.FAILED)
    job_in(store, JobStatus.CANCELLED)  # not a finished job for /metrics
    job_in(store, JobStatus.RUNNING)
    found = store.finished_jobs(start, 10)
    assert [job.id for job in found] == [succeeded.id, failed.id]
    first: Any = found[0]
    assert (first.status, first.created_at, first.finished_at, first.metrics) == (
        JobStatus.SUCCEEDED, succeeded.created_at, succeeded.finished_at, succeeded.metrics,
    )  # fmt: skip
    assert [job.id for job in store.finished_jobs(start, 1)] == [succeeded.id]
    assert store.finished_jobs(failed.finished_at, 10) == []  # type: ignore[arg-type]
