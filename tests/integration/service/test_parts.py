"""The parts the stack is built from, checked on their own: Celery settings, webhook signing
and URL policy, GPU assignment, and the null pipeline driven by the real JobRunner."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from shared.core.webhooks import WebhookUrlError, check_callback_url, owner_secret, sign, verify
from workers.celery_app import (
    DELIVER_WEBHOOK,
    JOB_TIME_LIMIT_S,
    PROCESS_JOBS,
    VISIBILITY_TIMEOUT_S,
    celery_app,
)
from workers.runtime import pick_gpu


def test_celery_settings_keep_jobs_safe() -> None:
    conf = celery_app.conf
    assert JOB_TIME_LIMIT_S == 900 and conf.task_time_limit == 900
    assert conf.task_soft_time_limit < conf.task_time_limit
    for options in (conf.broker_transport_options, conf.result_backend_transport_options):
        assert options["visibility_timeout"] == VISIBILITY_TIMEOUT_S > JOB_TIME_LIMIT_S
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.worker_proc_alive_timeout >= 60
    assert conf.task_default_queue == "facedit"
    assert {q.name for q in conf.task_queues} == {"facedit"}
    import workers.tasks  # noqa: F401

    for name in (PROCESS_JOBS, DELIVER_WEBHOOK):
        task = celery_app.tasks[name]
        assert task.retry_jitter and task.retry_backoff and task.max_retries
        assert any(issubclass(e, ConnectionError) for e in task.autoretry_for)


def test_webhook_signatures() -> None:
    secret = owner_secret("server", "alice")
    assert secret != owner_secret("server", "bob") != owner_secret("other", "alice")
    body = b'{"event":"batch.completed"}'
    header = sign(body, secret, timestamp=1_700_000_000)
    assert verify(body, header, secret, now=1_700_000_100)
    assert not verify(body, header, secret, now=1_700_000_000 + 301)  # too old: replayed
    assert not verify(body + b"x", header, secret, now=1_700_000_000)
    assert not verify(body, header.replace("v1=", "v1=0"), secret, now=1_700_000_000)
    assert not verify(body, "garbage", secret)
    with pytest.raises(ValueError):
        owner_secret("", "alice")


def test_callback_url_policy() -> None:
    assert check_callback_url("https://hooks.example.com/x") == "https://hooks.example.com/x"
    assert check_callback_url("http://127.0.0.1:9000/x", {"127.0.0.1"})
    assert check_callback_url("http://devbox:8080/x", {"devbox:8080"})
    for url, allowed in (
        ("http://hooks.example.com/x", ()),
        ("http://devbox:9090/x", {"devbox:8080"}),
        ("gopher://example.com", ()),
        ("https://", ()),
        ("https://u:p@example.com/", ()),
        ("https://example.com:99999/", ()),
        ("https://example.com/" + "a" * 3000, ()),
    ):
        with pytest.raises(WebhookUrlError):
            check_callback_url(url, allowed)


def test_each_pool_process_gets_one_gpu() -> None:
    assert pick_gpu("0,1,2,3", 0) == "0" and pick_gpu("0,1,2,3", 5) == "1"
    assert pick_gpu("GPU-a,GPU-b", 1) == "GPU-b"
    assert pick_gpu("0", 3) is None and pick_gpu(None, 0) is None and pick_gpu("0,1", None) is None


def test_null_pipeline_runs_jobs_through_the_job_runner(
    tmp_path: Path, small_faces: list[Path]
) -> None:
    import numpy as np
    from PIL import Image

    from shared.core.storage import LocalStorage
    from shared.editing.null_pipeline import NullPipeline
    from shared.jobs import JobStatus, JobStore, NewJob
    from shared.jobs.runner import JobRunner

    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    store.migrate()
    storage = LocalStorage(tmp_path / "storage")
    inputs = [storage.put(f"inputs/{p.name}", p.read_bytes()) for p in small_faces[:3]]
    edits = [{"attribute": "smile", "strength": 1.0}]
    options = {"pipeline": {"output_size": 128}}
    batch = store.create_batch(
        [NewJob(uri, edits, options) for uri in inputs]
        + [NewJob(inputs[0], [{"attribute": "moustache", "strength": 1.0}], options)]
    )
    runner = JobRunner(store, storage, NullPipeline(), worker_id="test")
    outcomes = runner.run(batch.job_ids)
    assert [o.status for o in outcomes] == ["succeeded"] * 3 + ["failed"]
    assert outcomes[-1].error_code == "invalid_edit_request"
    for path, outcome in zip(small_faces, outcomes[:3], strict=False):
        result = Image.open(io.BytesIO(storage.get(storage.key_from_uri(outcome.output_uri))))
        expected = Image.open(path).convert("RGB").resize((128, 128), Image.Resampling.BOX)
        diff = np.abs(np.asarray(result, int) - np.asarray(expected, int))
        assert result.size == (128, 128) and diff.mean() < 3
        job = store.get_job(outcome.job_id)
        assert job.status is JobStatus.SUCCEEDED and job.metrics["batch_size"] == 3
    store.close()
