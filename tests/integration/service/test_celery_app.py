"""workers/celery_app.py: the Celery settings that keep jobs safe, the task names the API and
the workers share, and an app module that imports nothing of workers/."""

from __future__ import annotations

import json
import subprocess
import sys

from shared.core.contracts import (
    DELIVER_WEBHOOK_TASK,
    JOB_TIME_LIMIT_S,
    PROCESS_JOBS_TASK,
    VISIBILITY_TIMEOUT_S,
)
from tests.integration.service.conftest import REPO
from workers.celery_app import celery_app


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


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
    assert {q.name for q in conf.task_queues} == {"facedit", "facedit-webhooks"}
    # Webhooks on their own queue, which KEDA does not count: they never scale GPU workers.
    assert conf.task_routes == {
        PROCESS_JOBS_TASK: {"queue": "facedit"},
        DELIVER_WEBHOOK_TASK: {"queue": "facedit-webhooks"},
    }
    import workers.tasks  # noqa: F401

    for name in (PROCESS_JOBS_TASK, DELIVER_WEBHOOK_TASK):
        task = celery_app.tasks[name]
        assert task.retry_jitter and task.retry_backoff and task.max_retries
        assert any(issubclass(e, ConnectionError) for e in task.autoretry_for)


def test_api_and_workers_agree_on_task_names_and_timings() -> None:
    """Both sides take the names and the visibility timeout from shared.core.contracts."""
    import workers.tasks  # noqa: F401 - registers the tasks
    from api.queue import TaskQueue
    from shared.core.config import Settings

    assert {PROCESS_JOBS_TASK, DELIVER_WEBHOOK_TASK} <= set(celery_app.tasks)
    queue = TaskQueue(Settings())
    try:
        conf = queue.app.conf
        for options in (conf.broker_transport_options, conf.result_backend_transport_options):
            assert options == celery_app.conf.broker_transport_options
    finally:
        queue.close()


def test_the_app_module_imports_nothing_of_workers() -> None:
    code = (
        "import json, sys\n"
        "import workers.celery_app\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'workers')))\n"
    )
    assert json.loads(_run(code)) == ["workers", "workers.celery_app"]


def test_worker_start_registers_the_tasks_and_connects_the_signals() -> None:
    """What a starting worker imports (``include``) is all it needs: the tasks, and the
    handlers that load the models per pool process and run the sweep thread."""
    code = """if True:
        import json
        from celery import signals
        from workers.celery_app import celery_app

        celery_app.loader.import_default_modules()
        names = ("worker_process_init", "worker_process_shutdown", "worker_ready",
                 "worker_shutdown")
        handlers = {
            name: sorted(f"{r.__module__}.{r.__name__}"
                         for r in getattr(signals, name)._live_receivers(None))
            for name in names
        }
        print(json.dumps({"tasks": sorted(celery_app.tasks), "handlers": handlers}))
    """
    found = json.loads(_run(code))
    assert {PROCESS_JOBS_TASK, DELIVER_WEBHOOK_TASK} <= set(found["tasks"])
    assert found["handlers"] == {
        "worker_process_init": ["workers.signals._load_models"],
        "worker_process_shutdown": ["workers.signals._close_runtime"],
        "worker_ready": ["workers.signals._serve_metrics", "workers.signals._start_sweeper"],
        "worker_shutdown": ["workers.signals._stop_metrics", "workers.signals._stop_sweeper"],
    }


def test_webhook_queue_defaults_after_the_job_queue_and_never_equals_it() -> None:
    import pytest
    from pydantic import ValidationError

    from shared.core.config import Settings

    assert Settings(queue="q1").webhook_queue == "q1-webhooks"
    assert Settings(queue="q1", webhook_queue="hooks").webhook_queue == "hooks"
    with pytest.raises(ValidationError):
        Settings(queue="q1", webhook_queue="q1")


def test_a_task_stops_claiming_well_within_its_time_limit() -> None:
    from shared.core.config import Settings

    assert Settings().worker_drain_seconds == 30 and Settings().store_threads == 2
    assert Settings().drain_seconds == 30
    assert Settings(task_time_limit_seconds=100, worker_drain_seconds=20).drain_seconds == 20
    assert Settings(task_time_limit_seconds=8).drain_seconds == 2  # a quarter of the limit


def test_a_webhook_worker_loads_no_models(tmp_path) -> None:
    """``facedit worker --webhooks`` (FACEDIT_WORKER_ROLE=webhooks): its process runtime has
    no pipeline and no storage, and nothing it imports reaches torch or the image stack — it
    runs in the API image, without a GPU."""
    code = f"""if True:
        import json, os, sys
        os.environ["FACEDIT_WORKER_ROLE"] = "webhooks"
        os.environ["FACEDIT_DATA_DIR"] = {str(tmp_path)!r}
        os.environ["FACEDIT_MODELS"] = "toy"
        from workers.celery_app import celery_app
        celery_app.loader.import_default_modules()
        from workers.runtime import init_process
        runtime = init_process()
        heavy = ("torch", "cv2", "numba", "dlib", "scipy", "skimage")
        print(json.dumps({{"pipeline": runtime.pipeline, "storage": runtime.storage,
                          "heavy": sorted(m for m in heavy if m in sys.modules)}}))
    """
    found = json.loads(_run(code).strip().splitlines()[-1])
    assert found == {"pipeline": None, "storage": None, "heavy": []}
