"""The API when a dependency is down: 503 with a stable code and Retry-After, never 500.

Here the database is unreachable (nothing listens on its port) and so is the broker; the fault
suite (tests/integration/faults) stops and restarts real servers under load.
"""

from __future__ import annotations

import httpx

from api.app import create_app
from tests.integration.service.conftest import ApiServer, Stack


def test_database_and_broker_down_answer_503_never_500(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={
        "database_url": "postgresql://facedit@127.0.0.1:1/facedit",
        "broker_url": "redis://127.0.0.1:1/0",
    })  # fmt: skip
    headers = {"Authorization": f"Bearer {stack.keys['alice']}"}
    with ApiServer(create_app(settings)) as url, httpx.Client(
        base_url=url, headers=headers, timeout=30
    ) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
        for answer in (
            client.get("/v1/jobs/" + "0" * 32),
            client.get("/v1/batches/" + "0" * 32),
            client.get("/v1/attributes"),
            client.post("/v1/jobs", json={"input_key": "x", "edits": ["smile=+1"]}),
            client.post("/v1/jobs/" + "0" * 32 + "/cancel"),
        ):
            assert answer.status_code == 503, (answer.request.url, answer.text)
            assert answer.json()["error"]["code"] == "database_unavailable"
            assert int(answer.headers["Retry-After"]) > 0
        metrics = client.get("/metrics")
        assert metrics.status_code == 503, metrics.text
