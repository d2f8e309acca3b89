"""api/app.py and its system routes (api/routes/system.py): an API process without torch,
health and readiness, the OpenAPI docs."""

from __future__ import annotations

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
