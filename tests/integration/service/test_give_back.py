"""A worker task that fails part-way gives back the jobs it still holds — and counts, once,
those that a store thread recorded as finished after the failure (the overlapped runner
always finishes the stores in flight)."""

from __future__ import annotations

from shared.core.config import Settings
from shared.jobs import JobStatus, JobStore, NewJob
from shared.jobs.deliveries import WebhookDeliveries
from workers import metrics
from workers.runtime import WorkerRuntime
from workers.tasks import _give_back


def _finished(status: str) -> float:
    value = metrics.METRICS.registry.get_sample_value(
        "facedit_jobs_finished_total", {"status": status, "error_code": ""})
    return value or 0.0


def test_jobs_recorded_after_a_task_failed_are_counted_and_the_rest_given_back(
    sqlite_store: JobStore, tmp_path
) -> None:
    runtime = WorkerRuntime(Settings(data_dir=tmp_path), sqlite_store, None, None, "w1",
                            WebhookDeliveries(sqlite_store))
    batch = sqlite_store.create_batch(
        [NewJob("file:///in.png", [{"attribute": "smile", "strength": 1.0}])] * 3)
    stored, unfinished, other = batch.job_ids
    jobs = [sqlite_store.claim(job_id, "w1", 60) for job_id in (stored, unfinished)]
    assert sqlite_store.claim(other, "w2", 60)
    assert sqlite_store.succeed(other, "file:///o.png", {})  # another worker's: not counted
    assert sqlite_store.succeed(stored, "file:///r.png", {})  # by a store thread, after
    before = _finished("succeeded")

    _give_back(runtime, [*jobs, sqlite_store.get_job(other)], RuntimeError("boom"))

    assert _finished("succeeded") - before == 1
    assert sqlite_store.get_job(stored).status is JobStatus.SUCCEEDED
    given_back = sqlite_store.get_job(unfinished)
    assert given_back.status is JobStatus.QUEUED and given_back.error_code == "worker_error"
