"""The OpenAPI document tells the truth about errors (api/openapi.py).

Every operation is exercised on the real stack with good and bad requests — 400, 401, 403,
404, 409, 413, 422, 429 (an API with a tiny rate limit), 501 (an API with file:// storage) and
503 (an API whose database and broker are down) — and every answer is checked against the
document: its status is documented for that operation, its body validates against the schema
documented for that status (jsonschema), and the headers it carries (Retry-After, RateLimit-*,
WWW-Authenticate) are documented. The document itself is valid OpenAPI 3.1, declares the bearer
scheme on every /v1 operation, and no longer mentions FastAPI's HTTPValidationError.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from api.app import create_app
from shared.jobs import NewJob
from tests.integration.service.conftest import MAX_BODY_BYTES, ApiServer, Stack

ERROR_REF = "#/components/schemas/ErrorBody"
DOCUMENTED_HEADERS = ("Retry-After", "WWW-Authenticate", "RateLimit-Limit",
                      "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy")
MISSING = "0" * 32


@dataclass(frozen=True)
class Answer:
    method: str
    template: str  # the documented path
    path: str
    status: int
    media_type: str
    body: bytes
    headers: httpx.Headers

    def __str__(self) -> str:
        return f"{self.method} {self.path} → {self.status} {self.body[:300]!r}"


class Recorder:
    """Keeps every answer to a documented operation that its clients receive."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.paths = {
            template: re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", template) + "$")
            for template in document["paths"]
        }
        self.answers: list[Answer] = []

    def record(self, response: httpx.Response) -> None:
        response.read()
        path = response.request.url.path
        template = next((t for t, rx in self.paths.items() if rx.match(path)), None)
        if template is None:
            return
        self.answers.append(Answer(
            response.request.method, template, path, response.status_code,
            response.headers.get("content-type", "").split(";")[0].strip(), response.content,
            response.headers,
        ))  # fmt: skip

    def client(self, base_url: str, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(
            base_url=base_url, headers=headers, timeout=60,
            event_hooks={"response": [self.record]},
        )  # fmt: skip


@pytest.fixture(scope="module")
def document(stack: Stack) -> dict[str, Any]:
    with stack.client(owner=None) as client:
        answer = client.get("/openapi.json")
    assert answer.status_code == 200
    return answer.json()


@contextlib.contextmanager
def _api(stack: Stack, **settings: Any) -> Iterator[str]:
    with ApiServer(create_app(stack.settings.model_copy(update=settings))) as url:
        yield url


def _exercise(stack: Stack, recorder: Recorder, face_png: bytes) -> None:
    alice, bob = stack.keys["alice"], stack.keys["bob"]
    json_headers = {"Content-Type": "application/json"}
    too_big = b'{"filename": "' + b"x" * (MAX_BODY_BYTES + 10) + b'"}'
    with recorder.client(stack.api_url, alice) as client, recorder.client(
        stack.api_url, bob
    ) as other, recorder.client(stack.api_url, None) as anonymous:
        # uploads: 201, 422, 400, 413, 401
        face = stack.upload(client, face_png)
        client.post("/v1/uploads", json={"filename": "notes.txt"})
        client.post("/v1/uploads", content=b"{nope", headers=json_headers)
        client.post("/v1/uploads", content=too_big, headers=json_headers)
        anonymous.post("/v1/uploads", json={})
        client.post("/v1/uploads", headers={"Authorization": "Basic abc"}, json={})

        # jobs: 202, 400, 403, 413, 422 (body and query), 401, 404, 409, the listing
        job = client.post("/v1/jobs", json={"input_key": face, "edits": ["smile=+1"]}).json()
        client.post("/v1/jobs", content=b"[" * 10_000, headers=json_headers)
        other.post("/v1/jobs", json={"input_key": face, "edits": ["smile=+1"]})
        client.post("/v1/jobs", content=too_big, headers=json_headers)
        client.post("/v1/jobs", json={"input_key": face, "edits": ["smile=+1"], "colour": 1})
        client.post("/v1/jobs", json={"input_key": face, "edits": ["wings=+1"]})
        anonymous.post("/v1/jobs", json={"input_key": face, "edits": ["smile=+1"]})
        client.get("/v1/jobs", params={"limit": 2})
        client.get("/v1/jobs", params={"status": "finished"})
        client.get("/v1/jobs", params={"cursor": "garbage"})
        stack.wait_job(client, job["id"])
        client.get(f"/v1/jobs/{job['id']}")
        client.get(f"/v1/jobs/{MISSING}")
        other.get(f"/v1/jobs/{job['id']}")
        client.post(f"/v1/jobs/{job['id']}/cancel")  # finished: 409
        client.post(f"/v1/jobs/{MISSING}/cancel")
        client.post(f"/v1/jobs/{job['id']}/cancel", content=too_big, headers=json_headers)
        client.post(f"/v1/jobs/{job['id']}/retry")  # succeeded: 409
        client.post(f"/v1/jobs/{MISSING}/retry")
        missing = stack.storage.uri(f"missing/{uuid.uuid4().hex}.png")
        failed = stack.store.create_batch(
            [NewJob(missing, [{"attribute": "smile", "strength": 1.0}])], owner="alice"
        ).job_ids[0]  # fmt: skip
        assert stack.store.fail(failed, "invalid_image", "made to fail by the test")
        client.post(f"/v1/jobs/{failed}/retry")  # 202
        with stack.paused():  # nothing runs it before it is cancelled
            queued = stack.store.create_batch(
                [NewJob(missing, [{"attribute": "smile", "strength": 1.0}])], owner="alice"
            )  # fmt: skip
            client.post(f"/v1/jobs/{queued.job_ids[0]}/cancel")  # 200

        # batches: 202, 400, 422, 403, 404, listing, cancel
        batch = client.post(
            "/v1/batches", json={"items": [{"input_key": face}], "edits": ["age=-1"]}
        ).json()  # fmt: skip
        client.post("/v1/batches", content=b"{", headers=json_headers)
        client.post("/v1/batches", json={"items": []})
        other.post("/v1/batches", json={"items": [{"input_key": face}], "edits": ["age=-1"]})
        client.get("/v1/batches", params={"limit": 5})
        client.get("/v1/batches", params={"status": "finished"})
        client.get(f"/v1/batches/{batch['id']}")
        client.get(f"/v1/batches/{batch['id']}", params={"limit": 0})
        client.get(f"/v1/batches/{MISSING}")
        client.post(f"/v1/batches/{batch['id']}/cancel")
        client.post(f"/v1/batches/{MISSING}/cancel")
        anonymous.get(f"/v1/batches/{batch['id']}")

        client.get("/v1/attributes")
        anonymous.get("/v1/attributes")
        for path in ("/healthz", "/readyz", "/metrics"):
            anonymous.get(path)

    # 429: an API with a rate limit of 30 requests in 30 s, spent by the first 30.
    with _api(stack, rate_limit_requests_per_second=1, rate_limit_burst_seconds=30) as url:
        with recorder.client(url, alice) as client:
            for _ in range(30):
                client.get("/v1/attributes")
            _every_v1_operation(client, face, job["id"], batch["id"])

    # 501: an API that stores files locally has no upload forms.
    with _api(stack, storage_url=f"file://{stack.tmp / 'local-storage'}") as url:
        with recorder.client(url, alice) as client:
            client.post("/v1/uploads", json={"filename": "face.png"})

    # 503: an API whose database and broker are down.
    down = {"database_url": "postgresql://facedit@127.0.0.1:1/facedit",
            "broker_url": "redis://127.0.0.1:1/0"}
    with _api(stack, **down) as url, recorder.client(url, alice) as client:
        _every_v1_operation(client, face, job["id"], batch["id"])
        for path in ("/healthz", "/readyz", "/metrics"):
            client.get(path)


def _every_v1_operation(client: httpx.Client, face: str, job_id: str, batch_id: str) -> None:
    client.post("/v1/uploads", json={})
    client.post("/v1/jobs", json={"input_key": face, "edits": ["smile=+1"]})
    client.get("/v1/jobs")
    client.get(f"/v1/jobs/{job_id}")
    client.post(f"/v1/jobs/{job_id}/cancel")
    client.post(f"/v1/jobs/{job_id}/retry")
    client.post("/v1/batches", json={"items": [{"input_key": face}], "edits": ["age=-1"]})
    client.get("/v1/batches")
    client.get(f"/v1/batches/{batch_id}")
    client.post(f"/v1/batches/{batch_id}/cancel")
    client.get("/v1/attributes")


@pytest.fixture(scope="module")
def answers(stack: Stack, document: dict[str, Any], small_faces: list[Path]) -> list[Answer]:
    recorder = Recorder(document)
    _exercise(stack, recorder, small_faces[2].read_bytes())
    return recorder.answers


def test_the_document_is_valid_openapi_with_the_bearer_scheme(document: dict[str, Any]) -> None:
    from openapi_spec_validator import validate

    validate(document)
    assert "HTTPValidationError" not in json.dumps(document)
    assert "ValidationError" not in document["components"]["schemas"]
    schemes = document["components"]["securitySchemes"]
    assert schemes == {"ApiKey": {
        "type": "http", "scheme": "bearer", "bearerFormat": "facedit API key",
        "description": schemes["ApiKey"]["description"],
    }}  # fmt: skip
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            secured = operation.get("security") == [{"ApiKey": []}]
            assert secured == path.startswith("/v1"), (method, path)
            responses = operation["responses"]
            assert "500" in responses, (method, path)
            if secured:
                assert {"401", "429", "503"} <= set(responses), (method, path)
            for status, response in responses.items():
                if int(status) >= 400 and path != "/readyz":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": ERROR_REF}, (method, path, status)


def test_every_answer_is_documented_and_matches_its_schema(
    document: dict[str, Any], answers: list[Answer]
) -> None:
    problems = []
    for answer in answers:
        operation = document["paths"][answer.template][answer.method.lower()]
        response = operation["responses"].get(str(answer.status))
        if response is None:
            problems.append(f"undocumented status: {answer}")
            continue
        media = response.get("content", {}).get(answer.media_type)
        if media is None:
            problems.append(f"undocumented content type {answer.media_type!r}: {answer}")
            continue
        for header in DOCUMENTED_HEADERS:
            if header in answer.headers and header not in response.get("headers", {}):
                problems.append(f"undocumented header {header}: {answer}")
        if answer.media_type != "application/json":
            continue
        schema = {**media["schema"], "components": document["components"]}
        errors = list(jsonschema.Draft202012Validator(schema).iter_errors(json.loads(answer.body)))
        problems += [f"{e.message} at {list(e.absolute_path)}: {answer}" for e in errors]
    assert not problems, "\n".join(problems)


def test_the_exercise_reached_every_operation_and_error_status(
    document: dict[str, Any], answers: list[Answer]
) -> None:
    operations = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    reached = {(a.method, a.template) for a in answers}
    assert operations == reached, operations - reached
    statuses = {a.status for a in answers}
    assert {200, 201, 202, 400, 401, 403, 404, 409, 413, 422, 429, 501, 503} <= statuses, statuses
    v1 = {op for op in operations if op[1].startswith("/v1")}
    assert {(a.method, a.template) for a in answers if a.status == 429} == v1
    assert {(a.method, a.template) for a in answers if a.status == 503} >= v1
    for answer in answers:
        if answer.status >= 400 and answer.template != "/readyz":
            assert set(json.loads(answer.body)) == {"error"}, answer
        if answer.status == 429:
            assert int(answer.headers["Retry-After"]) >= 1, answer
            assert "RateLimit-Policy" in answer.headers, answer
        if answer.status == 503 and answer.template != "/readyz":
            assert int(answer.headers["Retry-After"]) >= 1, answer
