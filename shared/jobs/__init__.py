"""Batches and jobs in SQL — the only owner of SQL in facedit — and the job runner.

- ``db``: engines, transactions (the SQLite rules), Alembic migrations, transient errors;
- ``tables``: the SQLAlchemy tables, the one declaration of every column;
- ``records``: the frozen records derived from the tables, and what a new job holds;
- ``queries``: reads (records, pages, counts by status, idempotency keys, finished jobs);
- ``store``: :class:`JobStore`, creating batches and the job state machine (with the reads);
- ``deliveries``, ``api_keys``: the webhook delivery log and the API keys;
- ``runner``: fetch → pipeline → store → state, for Celery tasks and the CLI alike.

Light to import (SQLAlchemy only; no torch, cv2, Celery or FastAPI).
"""

from shared.jobs.api_keys import ApiKeys
from shared.jobs.db import TRANSIENT_DATABASE_ERRORS, Database
from shared.jobs.records import (
    ApiKeyRecord,
    BatchRecord,
    BatchSummary,
    FinishedJob,
    JobRecord,
    NewJob,
    check_edits,
)
from shared.jobs.store import WORKER_LOST, JobStore
from shared.jobs.tables import TERMINAL_STATUSES, ApiKey, Batch, Job, JobStatus, WebhookDelivery

__all__ = [
    "TERMINAL_STATUSES",
    "TRANSIENT_DATABASE_ERRORS",
    "WORKER_LOST",
    "ApiKey",
    "ApiKeyRecord",
    "ApiKeys",
    "Batch",
    "BatchRecord",
    "BatchSummary",
    "Database",
    "FinishedJob",
    "Job",
    "JobRecord",
    "JobStatus",
    "JobStore",
    "NewJob",
    "WebhookDelivery",
    "check_edits",
]
