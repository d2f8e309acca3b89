"""Cancelling queued and running jobs: the SQL row decides, workers honour it."""

from __future__ import annotations

import re
import time
from pathlib import Path

from shared.jobs import JobStatus
from tests.integration.service.conftest import Stack

# Slow enough on the CPU (seconds, nearly all in the suppress stage) that the batch is
# still running when the test cancels it.
SLOW = {"suppressor": "poisson", "output_size": 512}


def test_cancel_queued_job_and_batch(stack: Stack, small_faces: list[Path]) -> None:
    with stack.client() as client:
        keys = [stack.upload(client, p.read_bytes()) for p in small_faces[:3]]
        with stack.paused():
            job = client.post("/v1/jobs", json={"input_key": keys[0], "edits": ["smile=+1"]})
            batch = client.post(
                "/v1/batches", json={"items": [{"input_key": k} for k in keys[1:]],
                                     "edits": ["age=+1"]},
            ).json()  # fmt: skip
            assert job.json()["status"] == "queued"
            cancelled = client.post(f"/v1/jobs/{job.json()['id']}/cancel")
            assert cancelled.status_code == 200, cancelled.text
            assert cancelled.json()["status"] == "cancelled"
            whole = client.post(f"/v1/batches/{batch['id']}/cancel").json()
            assert whole["cancelled"] == 2 and whole["counts"]["cancelled"] == 2 and whole["done"]
            assert stack.queue_length() >= 2  # the messages are still there ...
        # ... and once the workers read them, there is nothing to claim.
        stack.wait_for(lambda: stack.queue_length() == 0, what="the queue to drain")
        time.sleep(0.5)
        for job_id in [job.json()["id"], *(j["id"] for j in batch["jobs"])]:
            row = stack.job_row(job_id)
            assert row.status is JobStatus.CANCELLED and row.attempts == 0, row
        again = client.post(f"/v1/jobs/{job.json()['id']}/cancel")
        assert again.status_code == 409


def test_cancel_running_batch(stack: Stack, small_faces: list[Path]) -> None:
    with stack.client() as client:
        keys = [stack.upload(client, p.read_bytes()) for p in small_faces[:2]]
        body = {"items": [{"input_key": k} for k in keys], "edits": ["smile=+3"], "options": SLOW}
        with stack.paused():
            batch = client.post("/v1/batches", json=body).json()
        ids = [job["id"] for job in batch["jobs"]]
        # Progress reaches the job rows while they run (0.7 after the blend stage).
        stack.wait_for(
            lambda: any(
                (r := stack.job_row(i)).status is JobStatus.RUNNING and r.progress >= 0.5
                for i in ids
            ),
            what="a job of the batch to get half way",
        )
        stopped_before = _stopped_tasks(stack)
        answer = client.post(f"/v1/batches/{batch['id']}/cancel").json()
        assert answer["cancelled"] >= 1, answer["counts"]
        # The worker stops at the next stage boundary and reports the jobs cancelled.
        stack.wait_for(lambda: _stopped_tasks(stack) > stopped_before, what="the task to stop")
        rows = [stack.job_row(i) for i in ids]
        assert any(row.status is JobStatus.CANCELLED and row.started_at for row in rows)
        for row in rows:
            if row.status is JobStatus.CANCELLED:
                assert row.output_uri is None
                assert not stack.storage.exists(f"outputs/{batch['id']}/{row.id}/result.png")
        time.sleep(1.0)  # a late result would show up now
        for row in rows:
            assert stack.job_row(row.id).status is row.status


def _stopped_tasks(stack: Stack) -> int:
    """Tasks that ended with cancelled jobs, per the workers' logs."""
    return sum(
        len(re.findall(r"process_jobs\[[^\]]+\] succeeded in [^:]+: \{[^}]*'cancelled'", w.log()))
        for w in stack.workers
    )
