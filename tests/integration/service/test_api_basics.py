"""The API process: no torch, health and readiness, metrics, docs, the attribute catalog."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx

from tests.integration.service.conftest import REPO, ApiServer, Stack


def test_importing_and_building_the_app_does_not_import_torch(stack: Stack) -> None:
    code = (
        "import sys\n"
        "from api.app import create_app\n"
        "app = create_app()\n"
        "heavy = sorted(m for m in ('torch', 'cv2', 'scipy', 'skimage', 'workers') "
        "if m in sys.modules)\n"
        "print('heavy:', heavy)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=stack.env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "heavy: []" in result.stdout


def test_health_and_readiness(stack: Stack) -> None:
    with stack.client(owner=None) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {
            "status": "ready",
            "checks": {"database": "ok", "broker": "ok", "storage": "ok"},
        }


def test_openapi_docs_are_served(stack: Stack) -> None:
    with stack.client(owner=None) as client:
        docs = client.get("/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/jobs", "/v1/batches", "/v1/jobs/{job_id}/cancel", "/v1/jobs/{job_id}/retry",
                 "/v1/batches/{batch_id}/cancel", "/v1/uploads", "/v1/attributes"):
        assert path in paths, path


def test_attributes_come_from_the_workers_catalog(stack: Stack) -> None:
    with stack.client() as client:
        answer = client.get("/v1/attributes")
    assert answer.status_code == 200, answer.text
    catalog = answer.json()
    assert catalog["models"] == stack.settings.models
    assert {"smile", "age", "pose", "glasses"} <= set(catalog["names"])
    assert {a["name"] for a in catalog["attributes"]} <= set(catalog["names"])
    assert "poisson" in catalog["suppressors"] and "feature_diff" in catalog["activations"]


def test_metrics_expose_jobs_queue_and_latency_histograms(stack: Stack, small_faces) -> None:
    with stack.client() as client:
        key = stack.upload(client, small_faces[0].read_bytes())
        job = client.post("/v1/jobs", json={"input_key": key, "edits": ["age=-1"],
                                             "options": {"suppressor": "naive"}}).json()
        assert stack.wait_job(client, job["id"])["status"] == "succeeded"
        text = client.get("/metrics").text
    succeeded = re.search(r'^facedit_jobs_total\{status="succeeded"\} (\S+)$', text, re.M)
    assert succeeded and float(succeeded.group(1)) >= 1
    assert re.search(r"^facedit_queue_depth \S+$", text, re.M)
    count = re.search(r"^facedit_job_seconds_count (\S+)$", text, re.M)
    assert count and float(count.group(1)) >= 1
    for stage in ("fetch", "decode", "store"):
        assert re.search(
            rf'^facedit_stage_seconds_bucket\{{le="\+Inf",stage="{stage}"\}} [1-9]', text, re.M
        ), stage


def test_api_and_workers_agree_on_task_names() -> None:
    import api.queue
    import workers.tasks  # noqa: F401 - registers the tasks
    from workers.celery_app import celery_app

    assert api.queue.PROCESS_JOBS in celery_app.tasks
    assert api.queue.DELIVER_WEBHOOK in celery_app.tasks


def test_models_are_loaded_once_per_worker_process(stack: Stack, small_faces) -> None:
    with stack.client() as client:
        key = stack.upload(client, small_faces[1].read_bytes())
        for _ in range(2):
            job = client.post("/v1/jobs", json={"input_key": key, "edits": ["smile=+1"]}).json()
            assert stack.wait_job(client, job["id"])["status"] == "succeeded"
    for worker in stack.workers:
        loaded = re.findall(r"worker \S+/(\d+) ready: models=toy", worker.log())
        assert loaded and len(loaded) == len(set(loaded)), worker.log()[-3000:]


def test_readiness_fails_on_an_unmigrated_database(stack: Stack, postgres_server) -> None:
    from api.app import create_app

    empty = postgres_server.create_database("facedit_unmigrated")
    settings = stack.settings.model_copy(update={"database_url": empty})
    with ApiServer(create_app(settings)) as url:
        answer = httpx.get(f"{url}/readyz", timeout=30)
    assert answer.status_code == 503
    checks = answer.json()["checks"]
    assert "facedit db upgrade" in checks["database"]
    assert checks["broker"] == checks["storage"] == "ok"


def test_submissions_wait_for_a_worker_catalog(stack: Stack, small_faces) -> None:
    from api.app import create_app

    settings = stack.settings.model_copy(update={"queue": "no-workers-yet"})
    headers = {"Authorization": f"Bearer {stack.keys['alice']}"}
    with stack.client() as real:
        key = stack.upload(real, small_faces[0].read_bytes())
    with ApiServer(create_app(settings)) as url, httpx.Client(
        base_url=url, headers=headers, timeout=30
    ) as client:
        for answer in (
            client.get("/v1/attributes"),
            client.post("/v1/jobs", json={"input_key": key, "edits": ["smile=+1"]}),
        ):
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == "attributes_unavailable"
            assert answer.headers["Retry-After"] == "10"
