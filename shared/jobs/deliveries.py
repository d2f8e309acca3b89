"""The webhook delivery log: one ``webhook_deliveries`` row per batch outcome.

When the last job of a batch that has a ``callback_url`` reaches a final state, one row is
recorded (unique per batch and outcome, so however many workers notice the completion, it is
announced once); a Celery task then POSTs it (:mod:`shared.core.webhooks`) and records each
attempt here.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, update

from shared.core.webhooks import BATCH_COMPLETED, Delivery
from shared.jobs.queries import count_by_status
from shared.jobs.records import from_row
from shared.jobs.store import JobStore
from shared.jobs.tables import Batch, JobStatus, WebhookDelivery

deliveries_table = WebhookDelivery.__table__
_batches = Batch.__table__


class WebhookDeliveries:
    """The ``webhook_deliveries`` table of a (migrated) job store; every statement runs in
    the store's transactions (:meth:`shared.jobs.db.Database.transaction`)."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.db = store.db

    def announce_if_complete(self, batch_id: str) -> str | None:
        """If the batch has a callback URL and no queued or running job, record its
        completion; the new delivery's id, or None (not complete, no URL, announced)."""
        with self.db.transaction(write=True) as connection:
            batch = connection.execute(
                select(_batches.c.callback_url, _batches.c.owner).where(_batches.c.id == batch_id)
            ).first()
            if batch is None or not batch.callback_url:
                return None
            counts = count_by_status(connection, batch_ids=[batch_id])
            if counts[JobStatus.QUEUED] or counts[JobStatus.RUNNING]:
                return None
            now = datetime.now(UTC)
            delivery_id = uuid.uuid4().hex
            payload = {
                "event": BATCH_COMPLETED,
                "batch_id": batch_id,
                "delivery_id": delivery_id,
                "counts": counts,
                "total": sum(counts.values()),
                "completed_at": now.isoformat(),
            }
            event_key = "completed:" + ":".join(
                str(counts[s]) for s in ("succeeded", "failed", "cancelled")
            )
            row = {
                "id": delivery_id,
                "batch_id": batch_id,
                "owner": batch.owner,
                "event": BATCH_COMPLETED,
                "event_key": event_key,
                "url": batch.callback_url,
                "payload": payload,
                "status": "pending",
                "attempts": 0,
                "response_status": None,
                "last_error": None,
                "created_at": now,
                "updated_at": now,
                "delivered_at": None,
            }
            inserted = connection.execute(_insert_ignoring_duplicates(connection, row)).first()
            return delivery_id if inserted is not None else None

    def get(self, delivery_id: str) -> Delivery | None:
        with self.db.transaction(write=False) as connection:
            row = connection.execute(
                select(deliveries_table).where(deliveries_table.c.id == delivery_id)
            ).first()
        return None if row is None else _delivery(row._mapping)

    def for_batch(self, batch_id: str) -> list[Delivery]:
        query = (
            select(deliveries_table)
            .where(deliveries_table.c.batch_id == batch_id)
            .order_by(deliveries_table.c.created_at)
        )
        with self.db.transaction(write=False) as connection:
            return [_delivery(row._mapping) for row in connection.execute(query)]

    def reclaim_stale(self, older_than_s: float, limit: int = 100) -> list[str]:
        """Pending deliveries untouched for ``older_than_s`` (their message was lost: the
        broker was down when it was to be sent, or Redis lost it); marks them touched and
        returns their ids so they can be sent again."""
        now = datetime.now(UTC)
        stale = (
            select(deliveries_table.c.id)
            .where(
                deliveries_table.c.status == "pending",
                deliveries_table.c.updated_at < now - timedelta(seconds=older_than_s),
            )
            .limit(limit)
        )
        with self.db.transaction(write=True) as connection:
            ids = list(connection.scalars(stale))
            if ids:
                connection.execute(
                    update(deliveries_table)
                    .where(deliveries_table.c.id.in_(ids), deliveries_table.c.status == "pending")
                    .values(updated_at=now)
                )
        return ids

    def record_attempt(
        self,
        delivery_id: str,
        *,
        delivered: bool,
        response_status: int | None,
        error: str | None,
        give_up: bool,
    ) -> None:
        """Count one attempt: delivered, still pending, or failed for good."""
        now = datetime.now(UTC)
        status = "delivered" if delivered else ("failed" if give_up else "pending")
        with self.db.transaction(write=True) as connection:
            connection.execute(
                update(deliveries_table)
                .where(
                    deliveries_table.c.id == delivery_id,
                    deliveries_table.c.status == "pending",
                )
                .values(
                    status=status,
                    attempts=deliveries_table.c.attempts + 1,
                    response_status=response_status,
                    last_error=error,
                    updated_at=now,
                    delivered_at=now if delivered else None,
                )
            )


def _insert_ignoring_duplicates(connection: Connection, row: dict[str, Any]) -> Any:
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(deliveries_table).values(row).on_conflict_do_nothing()
    return statement.returning(deliveries_table.c.id)


def _delivery(row: Mapping[str, Any]) -> Delivery:
    return from_row(Delivery, row)
