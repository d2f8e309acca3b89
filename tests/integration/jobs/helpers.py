"""Jobs for the shared/jobs tests, and the SQL statements a block of code issues."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from shared.jobs import JobRecord, JobStatus, JobStore, NewJob

EDITS = [
    {"attribute": "age", "strength": 3.0},
    {"attribute": "smile", "strength": -1, "layers": [0, 6]},
]
LEASE = 60.0


def new_jobs(count: int, **kwargs: Any) -> list[NewJob]:
    return [
        NewJob(input_uri=f"file:///in/{i}.png", edits=EDITS, input_name=f"{i}.png", **kwargs)
        for i in range(count)
    ]


def job_in(store: JobStore, status: JobStatus, worker: str = "w1", **kwargs: Any) -> JobRecord:
    """A fresh job brought into ``status`` through legal transitions."""
    job_id = store.create_batch(new_jobs(1, **kwargs)).job_ids[0]
    if status != JobStatus.QUEUED:
        assert store.claim(job_id, worker, LEASE) is not None
    if status == JobStatus.SUCCEEDED:
        assert store.succeed(job_id, "file:///out/result.png")
    elif status == JobStatus.FAILED:
        assert store.fail(job_id, "invalid_image", "not an image")
    elif status == JobStatus.CANCELLED:
        assert store.cancel(job_id)
    job = store.get_job(job_id)
    assert job is not None and job.status == status
    return job


@contextmanager
def statements(store: JobStore) -> Iterator[list[str]]:
    """The SQL the store's engine sends while the block runs (BEGIN included), upper-cased."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(" ".join(statement.split()).upper())

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


def transactions(sent: list[str]) -> list[list[str]]:
    """``sent`` split into transactions: each starts with its BEGIN statement."""
    found: list[list[str]] = []
    for statement in sent:
        if statement.startswith("BEGIN"):
            found.append([statement])
        elif found:
            found[-1].append(statement)
    return found
