"""Records derived from the tables, the state of a new job, and edit lists checked by
shared.core.edits."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.core.errors import InvalidEditRequest
from shared.jobs import ApiKeyRecord, BatchRecord, JobRecord, JobStatus, NewJob, check_edits
from shared.jobs.records import FinishedJob, column_types, from_row, new_job_row, unstarted
from shared.jobs.tables import ApiKey, Batch, Job

NOW = datetime(2024, 1, 2, tzinfo=UTC)


def _fields(record: type) -> dict[str, object]:
    return {field.name: field.type for field in dataclasses.fields(record)}


def test_records_have_their_tables_columns_and_types() -> None:
    jobs = column_types(Job)
    assert list(jobs)[:3] == ["id", "batch_id", "position"]
    assert jobs["stage"] == str | None and jobs["edits"] == list[dict[str, Any]]
    assert _fields(JobRecord) == {**jobs, "status": JobStatus}
    assert _fields(BatchRecord) == {**column_types(Batch), "job_ids": tuple[str, ...]}
    api_key_columns = column_types(ApiKey)
    del api_key_columns["key_hash"]
    assert _fields(ApiKeyRecord) == api_key_columns
    assert set(_fields(FinishedJob)) < set(jobs)


def test_a_new_job_row_fills_every_column() -> None:
    job = NewJob("file:///a.png", [{"attribute": "smile", "strength": 1}], {"format": "png"},
                 input_name="a.png", max_attempts=2, input_sha256="ab" * 32)  # fmt: skip
    row = new_job_row(job, "jobs[0]", "b" * 32, 0, "alice", NOW)
    assert set(row) == set(Job.__table__.columns.keys())
    assert {name: row[name] for name in unstarted()} == unstarted()
    assert row["edits"] == [{"attribute": "smile", "strength": 1.0}]
    record = JobRecord(**{**row, "status": JobStatus(row["status"])})
    assert record.status == JobStatus.QUEUED and not record.is_terminal
    assert (record.input_name, record.max_attempts, record.owner) == ("a.png", 2, "alice")
    with pytest.raises(ValueError, match=r"jobs\[3\]\.max_attempts"):
        new_job_row(NewJob("file:///a.png", max_attempts=0), "jobs[3]", "b" * 32, 3, None, NOW)


def test_rows_become_records() -> None:
    row = {"id": "k" * 12, "owner": "alice", "name": None, "key_hash": "0" * 64,
           "prefix": "fdk_kkk", "created_at": NOW, "revoked_at": None, "last_used_at": None}
    record = from_row(ApiKeyRecord, row)
    assert (record.id, record.revoked) == ("k" * 12, False)
    assert dataclasses.replace(record, revoked_at=NOW).revoked


def test_check_edits_gives_the_canonical_form() -> None:
    edits = [{"attribute": "Age", "strength": -2, "extra": "dropped"},
             {"attribute": "smile", "sweep": {"start": -3, "end": 3, "steps": 7},
              "layers": (2, 8)}]  # fmt: skip
    assert check_edits(edits) == [
        {"attribute": "age", "strength": -2.0},
        {"attribute": "smile", "sweep": {"start": -3.0, "end": 3.0, "steps": 7}, "layers": [2, 8]},
    ]
    assert check_edits(()) == []  # the runner fails such a job with invalid_edit


@pytest.mark.parametrize(
    "edits, where",
    [
        ("smile=+1", r"^edits must be a list"),
        ({"attribute": "smile"}, r"^edits must be a list"),
        ([{"attribute": "smile", "strength": 1}, "smile=+1"], r"^edits\[1\]: "),
        ([{"attribute": "smile", "strength": 101}], r"^edits\[0\]: .*outside"),
        ([{"attribute": "smile", "strength": 1, "layers": [6, 2]}], r"^edits\[0\]: .*below"),
        ([{"attribute": "smile", "sweep": {"start": 0, "end": 1, "steps": "7"}}],
         r"^edits\[0\]: .*steps"),
        ([{"attribute": "a", "sweep": {"start": 0, "end": 1, "steps": 3}},
          {"attribute": "b", "sweep": {"start": 0, "end": 1, "steps": 3}}],
         r"^edits: at most one sweep"),
    ],
)  # fmt: skip
def test_check_edits_names_the_bad_edit(edits: object, where: str) -> None:
    with pytest.raises(InvalidEditRequest, match=where):
        check_edits(edits)
