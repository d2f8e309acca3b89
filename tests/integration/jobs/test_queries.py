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
    lines = [line for line in text.splitlines() if line.startswith("facedit_jobs{")]
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


def _walk(read: Any, limit: int, **filters: Any) -> list[Any]:
    """Every row of a newest-first listing, page by page."""
    rows, after = [], None
    while True:
        page = read(limit=limit, after=after, **filters)
        assert len(page.items) <= limit
        rows += page.items
        if page.next is None:
            return rows
        assert len(page.items) == limit and page.next == (rows[-1].created_at, rows[-1].id)
        after = page.next


def test_owner_jobs_newest_first_in_keyset_pages(store: JobStore) -> None:
    batches = [store.create_batch(new_jobs(n), owner="key-a") for n in (3, 1, 4, 2)]
    store.create_batch(new_jobs(2), owner="key-b")
    store.create_batch(new_jobs(1))  # anonymous
    mine = [job_id for batch in batches for job_id in batch.job_ids]

    for limit in (1, 3, 4, 10, 1000):
        rows = _walk(lambda **kw: store.list_owner_jobs("key-a", **kw), limit)
        keys = [(job.created_at, job.id) for job in rows]
        assert keys == sorted(keys, reverse=True) and len(set(keys)) == len(keys)
        assert sorted(job.id for job in rows) == sorted(mine)
    # The jobs of a batch share their created_at: the id breaks the tie, and a page may end
    # inside a batch without losing or repeating any of its jobs.
    assert len({job.created_at for job in store.list_owner_jobs("key-a").items}) == 4

    # Rows added while paging are newer than every position handed out: never on later pages.
    first = store.list_owner_jobs("key-a", limit=3)
    store.create_batch(new_jobs(2), owner="key-a")
    rest = _walk(lambda **kw: store.list_owner_jobs("key-a", **kw), 3)
    later = store.list_owner_jobs("key-a", limit=1000, after=first.next).items
    assert [j.id for j in first.items + later] == [j.id for j in rest[2:]]

    store.cancel(batches[0].job_ids[1])
    store.claim(batches[2].job_ids[0], "w", LEASE)
    assert [j.id for j in store.list_owner_jobs("key-a", statuses=["cancelled"]).items] == [
        batches[0].job_ids[1]
    ]
    both = store.list_owner_jobs("key-a", statuses=[JobStatus.CANCELLED, JobStatus.RUNNING])
    assert {j.id for j in both.items} == {batches[0].job_ids[1], batches[2].job_ids[0]}

    cut = batches[2].created_at
    older = store.list_owner_jobs("key-a", created_before=cut).items
    assert {j.id for j in older} == {*batches[0].job_ids, *batches[1].job_ids}
    window = store.list_owner_jobs("key-a", created_after=cut, created_before=batches[3].created_at)
    assert {j.id for j in window.items} == set(batches[2].job_ids)

    assert {j.id for j in store.list_owner_jobs(None).items} == {
        j for b in store.list_owner_batches(None).items for j in store.get_batch(b.id).job_ids
    }
    assert store.list_owner_jobs("nobody").items == []
    with pytest.raises(ValueError, match="limit"):
        store.list_owner_jobs("key-a", limit=1001)
    with pytest.raises(ValueError, match="status"):
        store.list_owner_jobs("key-a", statuses=["done"])


def test_owner_batches_with_counts_and_done_filter(store: JobStore) -> None:
    batches = [store.create_batch(new_jobs(n), owner="key-a") for n in (2, 3, 1)]
    store.create_batch(new_jobs(1), owner="key-b")
    store.cancel_batch(batches[0].id)
    store.claim(batches[1].job_ids[0], "w", LEASE)
    store.fail(batches[2].job_ids[0], "invalid_image", "not an image")

    rows = _walk(lambda **kw: store.list_owner_batches("key-a", **kw), 2)
    assert [b.id for b in rows] == [b.id for b in batches[::-1]]
    counts = {b.id: b.counts for b in rows}
    assert counts[batches[0].id] == {**ZEROS, "cancelled": 2}
    assert counts[batches[1].id] == {**ZEROS, "queued": 2, "running": 1}
    assert counts[batches[2].id] == {**ZEROS, "failed": 1}
    assert rows[0].owner == "key-a" and rows[0].options == batches[2].options
    assert all(b.counts == store.batch_counts(b.id) for b in rows)  # the one count

    done = store.list_owner_batches("key-a", done=True).items
    assert [b.id for b in done] == [batches[2].id, batches[0].id]
    assert [b.id for b in store.list_owner_batches("key-a", done=False).items] == [batches[1].id]
    after = store.list_owner_batches("key-a", created_after=batches[1].created_at).items
    assert [b.id for b in after] == [batches[2].id, batches[1].id]
