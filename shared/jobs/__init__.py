"""Batches and jobs in SQL: models, Alembic migrations and the job state machine.

Light to import (SQLAlchemy only; no torch, cv2, Celery or FastAPI).
"""

from shared.jobs.api_keys import ApiKeyRecord, ApiKeys
from shared.jobs.store import (
    WORKER_LOST,
    BatchRecord,
    JobRecord,
    JobStore,
    NewJob,
    check_edits,
)
from shared.jobs.tables import TERMINAL_STATUSES, ApiKey, Batch, Job, JobStatus, WebhookDelivery

__all__ = [
    "TERMINAL_STATUSES",
    "WORKER_LOST",
    "ApiKey",
    "ApiKeyRecord",
    "ApiKeys",
    "Batch",
    "BatchRecord",
    "Job",
    "JobRecord",
    "JobStatus",
    "JobStore",
    "NewJob",
    "WebhookDelivery",
    "check_edits",
]
