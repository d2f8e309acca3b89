"""SQLAlchemy tables for batches and jobs. The schema itself is created by Alembic
(``migrations/versions``); these declarations must match it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from shared.core.contracts import TERMINAL_STATUSES, JobStatus

__all__ = ["TERMINAL_STATUSES", "JobStatus"]  # the contract's, for the tables' users


# JSON on SQLite, JSONB on PostgreSQL.
PortableJSON = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite has no timezone type: values are stored as naive UTC text, and come back
    with ``tzinfo=UTC`` attached, so comparisons in SQL and in Python agree.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"datetime {value!r} must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Batch(Base):
    """Jobs submitted together, with what they share (owner, options, callback)."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(255))
    options: Mapped[dict[str, Any]] = mapped_column(PortableJSON, nullable=False)
    callback_url: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


# Idempotency keys are unique per owner; COALESCE makes the anonymous owner (NULL) one
# owner too, since NULLs never collide in a plain unique index.
Index(
    "uq_batches_owner_idempotency_key",
    func.coalesce(Batch.owner, ""),
    Batch.idempotency_key,
    unique=True,
)


class Job(Base):
    """One image with one edit request; its row is the source of truth for its state."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name="status",
        ),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress"),
        Index("ix_jobs_status_created_at", "status", "created_at"),
        Index("ix_jobs_batch_id", "batch_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    batch_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("batches.id", ondelete="CASCADE"), nullable=False
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    owner: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    edits: Mapped[list[dict[str, Any]]] = mapped_column(PortableJSON, nullable=False)
    options: Mapped[dict[str, Any]] = mapped_column(PortableJSON, nullable=False)
    input_uri: Mapped[str] = mapped_column(Text, nullable=False)
    input_name: Mapped[str | None] = mapped_column(Text)
    input_sha256: Mapped[str | None] = mapped_column(String(64))
    output_uri: Mapped[str | None] = mapped_column(Text)
    intermediates: Mapped[dict[str, str]] = mapped_column(PortableJSON, nullable=False)
    # every result: [{"label", "edits", "uri", "intermediates"}], one per sweep step
    outputs: Mapped[list[dict[str, Any]]] = mapped_column(
        PortableJSON, nullable=False, server_default=text("'[]'")
    )
    latent_uri: Mapped[str | None] = mapped_column(Text)
    suppressor: Mapped[str | None] = mapped_column(String(32))  # the one that ran ("auto" resolved)
    metrics: Mapped[dict[str, Any]] = mapped_column(PortableJSON, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[float] = mapped_column(Float, nullable=False)
    stage: Mapped[str | None] = mapped_column(String(64))
    worker_id: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # transient failures (storage/database/broker down): the job waits until ``not_before``,
    # ``retries`` so far, and is retried until ``retry_until`` (then it fails)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retries: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    retry_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


# Finished jobs by time: the API's /metrics reads the jobs finished since its last scrape.
Index("ix_jobs_finished_at", Job.finished_at)
# An owner's jobs and batches newest first: the keyset pages of GET /v1/jobs and /v1/batches.
Index("ix_jobs_owner_created_at_id", Job.owner, Job.created_at, Job.id)
Index("ix_batches_owner_created_at_id", Batch.owner, Batch.created_at, Batch.id)


class ApiKey(Base):
    """An API key: only the SHA-256 of the secret is stored; ``owner`` scopes every query."""

    __tablename__ = "api_keys"
    __table_args__ = (
        Index("uq_api_keys_key_hash", "key_hash", unique=True),
        Index("ix_api_keys_owner", "owner"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), nullable=False)
    name: Mapped[str | None] = mapped_column(String(255))
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    prefix: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookDelivery(Base):
    """One webhook call (a batch finished) and its delivery state.

    No foreign key to ``batches``: deliveries are a log that outlives the rows it reports on.
    ``(batch_id, event_key)`` is unique so a completion is announced once however many
    workers notice it.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')", name="status"
        ),
        Index("uq_webhook_deliveries_batch_id_event_key", "batch_id", "event_key", unique=True),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(32), nullable=False)
    owner: Mapped[str | None] = mapped_column(String(255))
    event: Mapped[str] = mapped_column(String(64), nullable=False)
    event_key: Mapped[str] = mapped_column(String(128), nullable=False)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(PortableJSON, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    response_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Catalog(Base):
    """What the workers of one queue can do (their attribute catalog), as they last published
    it; the API reads it to check requests. Kept in SQL so that losing Redis loses nothing."""

    __tablename__ = "catalogs"

    queue: Mapped[str] = mapped_column(String(255), primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(PortableJSON, nullable=False)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
