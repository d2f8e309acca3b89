"""The webhook delivery log: one delivery per batch outcome, attempts, stale deliveries, and
its writes in the store's transactions."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from shared.core.webhooks import BATCH_COMPLETED
from shared.jobs import JobStore
from shared.jobs.deliveries import WebhookDeliveries
from tests.integration.jobs.helpers import LEASE, new_jobs, statements, transactions

HOOK = "https://example.com/hook"


def test_a_finished_batch_is_announced_once(store: JobStore) -> None:
    deliveries = WebhookDeliveries(store)
    batch = store.create_batch(new_jobs(2), owner="alice", callback_url=HOOK)
    first, second = batch.job_ids
    store.claim(first, "w", LEASE)
    store.succeed(first, "file:///o.png")
    assert deliveries.announce_if_complete(batch.id) is None  # one job still queued
    store.fail(second, "invalid_image", "bad")
    delivery_id = deliveries.announce_if_complete(batch.id)
    assert delivery_id is not None
    assert deliveries.announce_if_complete(batch.id) is None  # already announced

    delivery = deliveries.get(delivery_id)
    assert delivery is not None
    assert (delivery.batch_id, delivery.owner, delivery.url) == (batch.id, "alice", HOOK)
    assert (delivery.event, delivery.status, delivery.attempts) == (BATCH_COMPLETED, "pending", 0)
    assert delivery.payload["counts"] == store.batch_counts(batch.id)
    assert delivery.payload["total"] == 2 and delivery.payload["delivery_id"] == delivery_id

    # Retried and finished again with another outcome: announced again.
    assert store.retry(second)
    store.claim(second, "w", LEASE)
    store.succeed(second, "file:///o2.png")
    again = deliveries.announce_if_complete(batch.id)
    assert again is not None and again != delivery_id
    assert [d.id for d in deliveries.for_batch(batch.id)] == [delivery_id, again]


def test_batches_without_a_callback_or_unknown_are_not_announced(store: JobStore) -> None:
    deliveries = WebhookDeliveries(store)
    batch = store.create_batch(new_jobs(1))
    store.cancel(batch.job_ids[0])
    assert deliveries.announce_if_complete(batch.id) is None
    assert deliveries.announce_if_complete("0" * 32) is None
    assert deliveries.for_batch(batch.id) == [] and deliveries.get("0" * 32) is None


def test_concurrent_announcements_record_one_delivery(store: JobStore) -> None:
    batch = store.create_batch(new_jobs(1), callback_url=HOOK)
    store.cancel(batch.job_ids[0])
    threads = 8
    barrier = threading.Barrier(threads)

    def announce(_: int) -> str | None:
        barrier.wait()
        return WebhookDeliveries(store).announce_if_complete(batch.id)

    with ThreadPoolExecutor(threads) as pool:
        ids = list(pool.map(announce, range(threads)))
    assert len([i for i in ids if i is not None]) == 1


def test_attempts_until_delivered_or_given_up(store: JobStore) -> None:
    deliveries = WebhookDeliveries(store)
    ids = []
    for _ in range(2):
        batch = store.create_batch(new_jobs(1), callback_url=HOOK)
        store.cancel(batch.job_ids[0])
        ids.append(deliveries.announce_if_complete(batch.id))
    delivered, failed = ids
    assert delivered is not None and failed is not None
    deliveries.record_attempt(delivered, delivered=False, response_status=503, error="busy",
                              give_up=False)  # fmt: skip
    retrying = deliveries.get(delivered)
    assert retrying is not None
    assert (retrying.status, retrying.attempts, retrying.last_error) == ("pending", 1, "busy")
    deliveries.record_attempt(delivered, delivered=True, response_status=204, error=None,
                              give_up=False)  # fmt: skip
    done = deliveries.get(delivered)
    assert done is not None
    assert (done.status, done.attempts, done.response_status) == ("delivered", 2, 204)
    assert done.delivered_at is not None
    deliveries.record_attempt(failed, delivered=False, response_status=None, error="refused",
                              give_up=True)  # fmt: skip
    deliveries.record_attempt(failed, delivered=True, response_status=204, error=None,
                              give_up=False)  # fmt: skip  # too late: no longer pending
    gone = deliveries.get(failed)
    assert gone is not None and (gone.status, gone.attempts) == ("failed", 1)


def test_stale_pending_deliveries_are_reclaimed_once(store: JobStore) -> None:
    deliveries = WebhookDeliveries(store)
    batch = store.create_batch(new_jobs(1), callback_url=HOOK)
    store.cancel(batch.job_ids[0])
    delivery_id = deliveries.announce_if_complete(batch.id)
    assert deliveries.reclaim_stale(3600) == []  # fresh
    assert deliveries.reclaim_stale(0.0) == [delivery_id]
    assert deliveries.reclaim_stale(60) == []  # touched by the reclaim


def test_sqlite_writes_begin_immediate(sqlite_store: JobStore) -> None:
    deliveries = WebhookDeliveries(sqlite_store)
    batch = sqlite_store.create_batch(new_jobs(1), callback_url=HOOK)
    sqlite_store.cancel(batch.job_ids[0])
    with statements(sqlite_store) as sent:
        delivery_id = deliveries.announce_if_complete(batch.id)
        assert delivery_id is not None
        deliveries.reclaim_stale(0.0)
        deliveries.record_attempt(delivery_id, delivered=True, response_status=204, error=None,
                                  give_up=False)  # fmt: skip
    assert [t[0] for t in transactions(sent)] == ["BEGIN IMMEDIATE"] * 3
