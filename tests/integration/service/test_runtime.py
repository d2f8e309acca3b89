"""workers/runtime.py (with the signal handlers of workers/signals.py): one model bundle per
pool process, one GPU each, and the job runner built from the settings."""

from __future__ import annotations

import re

from shared.core.config import Settings
from tests.integration.service.conftest import Stack
from workers.runtime import WorkerRuntime, pick_gpu


def test_each_pool_process_gets_one_gpu() -> None:
    assert pick_gpu("0,1,2,3", 0) == "0" and pick_gpu("0,1,2,3", 5) == "1"
    assert pick_gpu("GPU-a,GPU-b", 1) == "GPU-b"
    assert pick_gpu("0", 3) is None and pick_gpu(None, 0) is None and pick_gpu("0,1", None) is None


def test_the_runner_takes_its_limits_from_the_settings() -> None:
    settings = Settings(lease_seconds=7, min_image_side=32, max_image_pixels=100_000,
                        max_image_bytes=99)
    runtime = WorkerRuntime(settings, store=None, storage=None, pipeline=None,  # type: ignore[arg-type]
                            worker_id="host/1", deliveries=None)  # type: ignore[arg-type]
    runner = runtime.runner
    assert (runner.worker_id, runner.lease_seconds, runner.min_side, runner.max_pixels,
            runner.max_image_bytes) == ("host/1", 7, 32, 100_000, 99)


def test_models_are_loaded_once_per_worker_process(stack: Stack, small_faces) -> None:
    with stack.client() as client:
        key = stack.upload(client, small_faces[1].read_bytes())
        for _ in range(2):
            job = client.post("/v1/jobs", json={"input_key": key, "edits": ["smile=+1"]}).json()
            assert stack.wait_job(client, job["id"])["status"] == "succeeded"
    for worker in stack.workers:
        loaded = re.findall(r"worker \S+/(\d+) ready: models=toy", worker.log())
        assert loaded and len(loaded) == len(set(loaded)), worker.log()[-3000:]


def test_a_worker_backs_off_while_a_dependency_is_down() -> None:
    import time

    from shared.jobs.runner import JobOutcome
    from workers.runtime import DependencyBackoff

    down = [JobOutcome(f"j{i}", "queued", 0.1, error_code="storage_unavailable")
            for i in range(3)]
    backoff = DependencyBackoff(first_s=0.2, max_s=1.0)
    backoff.record(down)
    first = backoff.until - time.monotonic()
    assert 0.09 <= first <= 0.2
    for _ in range(5):
        backoff.record(down)
    assert backoff.until - time.monotonic() <= 1.0 and backoff.failures == 6  # capped
    started = time.monotonic()
    backoff.wait()
    assert 0.45 <= time.monotonic() - started <= 1.1
    backoff.record([*down[:2], JobOutcome("j9", "succeeded", 0.1)])  # one got through
    assert backoff.failures == 0 and backoff.until == 0.0
    started = time.monotonic()
    backoff.wait()
    assert time.monotonic() - started < 0.05
    backoff.record([])  # nothing claimed: no change
    assert backoff.failures == 0


def test_the_task_time_limit_is_a_setting() -> None:
    from shared.core.config import Settings
    from workers.celery_app import make_celery

    conf = make_celery(Settings(task_time_limit_seconds=8)).conf
    assert conf.task_time_limit == 8 and conf.task_soft_time_limit == 4
    assert conf.broker_transport_options["visibility_timeout"] >= 1800
    long = make_celery(Settings(task_time_limit_seconds=3600)).conf
    assert long.task_soft_time_limit == 3570
    assert long.broker_transport_options["visibility_timeout"] == 7200
