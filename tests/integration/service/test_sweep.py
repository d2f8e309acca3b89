"""workers/sweep.py: a worker that dies mid-job: its lease expires, the sweep requeues the job,
and a job that keeps killing workers fails after max_attempts instead of looping. (The sweep's
resending of lost webhook deliveries is in test_webhooks.py, with the webhook receiver.)"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from shared.jobs import WORKER_LOST, JobStatus, NewJob
from tests.integration.service.conftest import Stack


def test_killed_worker_process_loses_no_job(stack: Stack, small_faces: list[Path]) -> None:
    """SIGKILL the pool process in the middle of a job: Celery replaces the process, the
    job's lease runs out (no more heartbeats), the sweep requeues it and it completes."""
    with stack.client() as client:
        key = stack.upload(client, small_faces[7].read_bytes())
        body = {"input_key": key, "edits": ["smile=+2"],
                "options": {"suppressor": "poisson", "output_size": 512}}
        job = client.post("/v1/jobs", json=body).json()
        running = stack.wait_for(
            lambda: (r := stack.job_row(job["id"])).status is JobStatus.RUNNING
            and r.progress >= 0.5 and r,
            what="the job to be half way",
        )
        host, _, pid = running.worker_id.rpartition("/")
        workers = {str(w.process.pid) for w in stack.workers}
        assert pid not in workers  # a pool process, not a worker's main process
        os.kill(int(pid), signal.SIGKILL)
        done = stack.wait_job(client, job["id"], timeout_s=90)
    assert done["status"] == "succeeded", (done["error_code"], done["error_message"])
    row = stack.job_row(job["id"])
    assert row.attempts == 2 and row.worker_id != running.worker_id
    assert stack.storage.exists(f"outputs/{row.batch_id}/{row.id}/result.png")


def test_expired_lease_is_requeued_and_finished(stack: Stack, small_faces: list[Path]) -> None:
    with stack.client() as client:
        key = stack.upload(client, small_faces[5].read_bytes())
        with stack.paused():
            job = client.post("/v1/jobs", json={"input_key": key, "edits": ["smile=+1"],
                                                 "options": {"suppressor": "naive"}}).json()
            # A worker claims it and dies: nobody renews the lease, no result comes.
            claimed = stack.store.claim(job["id"], "dead-host/1", lease_seconds=0.2)
            assert claimed is not None and claimed.attempts == 1
        done = stack.wait_job(client, job["id"], timeout_s=60)
    assert done["status"] == "succeeded"
    row = stack.job_row(job["id"])
    assert row.attempts == 2 and row.worker_id != "dead-host/1"


def test_job_that_keeps_killing_workers_fails(stack: Stack, small_faces: list[Path]) -> None:
    with stack.client() as client:
        key = stack.upload(client, small_faces[6].read_bytes())
    uri = stack.storage.uri(key)
    with stack.paused():
        batch = stack.store.create_batch(
            [NewJob(uri, [{"attribute": "smile", "strength": 1.0}], max_attempts=2)],
            owner="alice",
        )
        job_id = batch.job_ids[0]
        for attempt in (1, 2):
            stack.wait_for(
                lambda: stack.job_row(job_id).status is JobStatus.QUEUED, what="a requeue"
            )
            claimed = stack.store.claim(job_id, f"dead-host/{attempt}", lease_seconds=0.2)
            assert claimed is not None and claimed.attempts == attempt
        row = stack.wait_for(
            lambda: (r := stack.job_row(job_id)).status is JobStatus.FAILED and r,
            what="the job to fail",
        )
    assert row.error_code == WORKER_LOST and row.attempts == 2 and row.output_uri is None
