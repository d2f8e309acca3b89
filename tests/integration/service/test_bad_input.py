"""Every kind of bad request gets a precise 4xx with a machine-readable error, and nothing
is created or enqueued for it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from shared.jobs import ApiKeys, Job
from tests.integration.service.conftest import (
    MAX_BATCH_IMAGES,
    MAX_BODY_BYTES,
    MAX_IMAGE_BYTES,
    Stack,
)


@pytest.fixture(scope="module")
def inputs(stack: Stack, small_faces: list[Path]) -> dict[str, str]:
    with stack.client() as client:
        face = stack.upload(client, small_faces[0].read_bytes())
    # S3 refuses uploads like these (test_uploads.py); objects put there by other means (an
    # operator, an older upload form) are still checked at submission.
    folder = face.rpartition("/")[0]
    stack.storage.put(f"{folder}/huge.png", b"\0" * (MAX_IMAGE_BYTES + 1))
    stack.storage.put(f"{folder}/empty.png", b"")
    return {"face": face, "huge": f"{folder}/huge.png", "empty": f"{folder}/empty.png"}


@pytest.fixture(scope="module")
def quiet(stack: Stack) -> Iterator[None]:
    """Workers paused: any message a bad request sent would stay in the queue."""
    with stack.paused():
        yield


def _job_rows(stack: Stack) -> int:
    with stack.store.engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(Job.__table__))


def _good(inputs: dict[str, str], **changes: Any) -> dict[str, Any]:
    return {"input_key": inputs["face"], "edits": ["smile=+1"], **changes}


def _check(answer: httpx.Response, status: int, code: str, words: str = "") -> None:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code, error
    assert words.lower() in error["message"].lower(), error


BAD_EDITS = [
    ({"attribute": "smile", "strength": float("nan")}, "invalid_edit", "not finite"),
    ({"attribute": "smile", "strength": float("inf")}, "invalid_edit", "not finite"),
    ({"attribute": "smile", "strength": 100.5}, "invalid_edit", "outside"),
    ({"attribute": "smile", "strength": -1e9}, "invalid_edit", "outside"),
    ({"attribute": "smile", "strength": "lots"}, "invalid_edit", "strength"),
    ({"attribute": "smile"}, "invalid_edit", "either strength or sweep"),
    ({"attribute": "smile", "strength": 1, "sweep": {"start": 0, "end": 1, "steps": 3}},
     "invalid_edit", "either strength or sweep"),
    ({"attribute": "smile", "sweep": {"start": -3, "end": 3, "steps": 1}}, "invalid_edit",
     "outside [2, 64]"),
    ({"attribute": "smile", "sweep": {"start": -3, "end": 3, "steps": 65}}, "invalid_edit",
     "outside [2, 64]"),
    ({"attribute": "smile", "sweep": {"start": 2, "end": 2, "steps": 5}}, "invalid_edit",
     "start and end are both 2"),
    ({"attribute": "smile", "sweep": {"start": 0, "end": 1}}, "missing_field", "steps"),
    ("smile=2:2:5", "invalid_edit", "start and end"),
    ({"attribute": "smile", "strength": 1, "layers": [4, 2]}, "invalid_edit", "below end"),
    ({"attribute": "smile", "strength": 1, "layers": [0, 99]}, "invalid_edit", "layers"),
    ({"attribute": "smile", "strength": 1, "extra": 1}, "invalid_edit", "unknown field"),
    ({"attribute": "moustache", "strength": 1}, "unknown_attribute", "moustache"),
    ("moustache=+1", "unknown_attribute", "available"),
    ("smile=+1e999", "invalid_edit", "not finite"),
    ("smile=plenty", "invalid_edit", "not a number"),
    ("smile", "invalid_edit", "ATTRIBUTE=STRENGTH"),
]


@pytest.mark.parametrize(("edit", "code", "words"), BAD_EDITS, ids=lambda v: str(v)[:30])
def test_bad_edits(stack: Stack, inputs: dict[str, str], quiet: None, edit: Any, code: str,
                   words: str) -> None:
    before, queued = _job_rows(stack), stack.queue_length()
    body = json.dumps(_good(inputs, edits=[edit]), allow_nan=True)  # NaN/Infinity literals
    with stack.client() as client:
        answer = client.post("/v1/jobs", content=body,
                             headers={"Content-Type": "application/json"})
    _check(answer, 422, code, words)
    assert (_job_rows(stack), stack.queue_length()) == (before, queued)


def test_bad_requests(stack: Stack, inputs: dict[str, str], quiet: None) -> None:
    before, queued = _job_rows(stack), stack.queue_length()
    bucket = stack.storage.bucket
    face = inputs["face"]
    with stack.client() as client:
        raw = {"Content-Type": "application/json"}
        _check(client.post("/v1/jobs", content=b'{"input_key": ', headers=raw), 400,
               "invalid_json")
        _check(client.post("/v1/jobs", content=b"[1, 2", headers=raw), 400, "invalid_json")
        _check(client.post("/v1/jobs", json=_good(inputs, colour="red")), 422, "unknown_field",
               "colour")
        _check(client.post("/v1/jobs", json=_good(inputs, options={"sharpen": 1})), 422,
               "unknown_field", "options.sharpen")
        _check(client.post("/v1/jobs", json={"input_key": face}), 422, "missing_field", "edits")
        _check(client.post("/v1/jobs", json=_good(inputs, edits=[])), 422, "invalid_edit")
        _check(client.post("/v1/jobs", json=_good(inputs, edits=["smile=-1:1:3", "age=0:1:2"])),
               422, "invalid_edit", "at most one sweep")
        _check(client.post("/v1/jobs", json=_good(inputs, quality=0)), 422, "invalid_request",
               "quality")
        _check(client.post("/v1/jobs", json=_good(inputs, options={"suppressor": "magic"})),
               422, "invalid_option", "suppressor")
        _check(client.post("/v1/jobs", json=_good(inputs, options={"suppressor": "sdea"})),
               422, "model_unavailable", "deghosting.pt")
        _check(client.post("/v1/jobs", json=_good(inputs, options={"output_size": 8})), 422,
               "invalid_option", "output_size")
        _check(client.post("/v1/jobs", json=_good(inputs, format="gif")), 422,
               "invalid_request", "format")
        # Inputs: only objects of the service's own storage, present, small enough.
        for uri in (
            f"s3://another-bucket/data/{face}",
            f"s3://{bucket}/elsewhere/{face}",
            "https://example.com/face.png",
            "file:///etc/passwd",
            f"http://169.254.169.254/{face}",
        ):
            body = {"input_uri": uri, "edits": ["smile=+1"]}
            _check(client.post("/v1/jobs", json=body), 422, "invalid_input_uri", "storage")
        _check(client.post("/v1/jobs", json=_good(inputs, input_uri=stack.storage.uri(face))),
               422, "invalid_input", "exactly one")
        _check(client.post("/v1/jobs", json={"edits": ["smile=+1"]}), 422, "invalid_input")
        _check(client.post("/v1/jobs", json=_good(inputs, input_key="../etc/passwd")), 422,
               "invalid_input_key")
        missing = stack.storage.uri("inputs/never/uploaded.png")
        _check(client.post("/v1/jobs", json={"input_uri": missing, "edits": ["smile=+1"]}),
               422, "input_not_found", "inputs/never/uploaded.png")
        _check(client.post("/v1/jobs", json=_good(inputs, input_key=inputs["huge"])), 422,
               "image_too_large", str(MAX_IMAGE_BYTES))
        _check(client.post("/v1/jobs", json=_good(inputs, input_key=inputs["empty"])), 422,
               "invalid_image", "empty")
        # A batch is all or nothing: one missing input refuses the whole request.
        items = [{"input_key": face}, {"input_uri": missing}]
        _check(client.post("/v1/batches", json={"items": items, "edits": ["smile=+1"]}), 422,
               "input_not_found", "items[1]")
        _check(client.post("/v1/batches", json={"items": [{"input_key": face}]}), 422,
               "missing_field", "items[0].edits")
        too_many = [{"input_key": face}] * (MAX_BATCH_IMAGES + 1)
        _check(client.post("/v1/batches", json={"items": too_many, "edits": ["smile=+1"]}),
               422, "too_many_images", str(MAX_BATCH_IMAGES))
        padded = json.dumps(_good(inputs)) + " " * MAX_BODY_BYTES
        _check(client.post("/v1/jobs", content=padded, headers=raw), 413, "body_too_large")

        def chunks() -> Iterator[bytes]:  # no Content-Length: the streamed size counts
            yield json.dumps(_good(inputs)).encode()
            for _ in range(MAX_BODY_BYTES // 1024 + 1):
                yield b" " * 1024

        _check(client.post("/v1/jobs", content=chunks(), headers=raw), 413, "body_too_large")
        # Webhooks: https only, except allow-listed development hosts.
        for url, code in (("http://example.com/hook", "invalid_callback_url"),
                          ("ftp://example.com/hook", "invalid_callback_url"),
                          ("https://user:pw@example.com/hook", "invalid_callback_url")):
            _check(client.post("/v1/jobs", json=_good(inputs, callback_url=url)), 422, code)
        _check(client.post("/v1/jobs", json=_good(inputs), headers={"Idempotency-Key": "a b"}),
               422, "invalid_idempotency_key")
        # Unknown ids and routes.
        _check(client.get("/v1/jobs/0123456789abcdef"), 404, "job_not_found")
        _check(client.post("/v1/jobs/0123456789abcdef/retry"), 404, "job_not_found")
        _check(client.get("/v1/batches/nope"), 404, "batch_not_found")
        _check(client.get("/v1/nothing"), 404, "not_found")
        _check(client.delete("/v1/jobs"), 405, "method_not_allowed")
        _check(client.get("/v1/batches/nope", params={"limit": 0}), 422, "invalid_request",
               "limit")
    assert (_job_rows(stack), stack.queue_length()) == (before, queued)


def _altered(key: str) -> str:
    """``key`` with its last character changed (to one it is not: a fixed replacement would
    leave the key valid whenever it already ends in that character)."""
    return key[:-1] + ("A" if key[-1] != "A" else "B")


def test_bad_keys(stack: Stack, inputs: dict[str, str], quiet: None) -> None:
    before, queued = _job_rows(stack), stack.queue_length()
    record, revoked_key = ApiKeys(stack.store).create("carol")
    assert ApiKeys(stack.store).revoke(record.id)
    body = _good(inputs)
    for headers, code in (
        ({}, "missing_api_key"),
        ({"Authorization": "Basic abc"}, "invalid_api_key"),
        ({"Authorization": "Bearer"}, "invalid_api_key"),
        ({"Authorization": "Bearer fdk_000000000000_" + "x" * 43}, "invalid_api_key"),
        ({"Authorization": "Bearer " + _altered(stack.keys["alice"])}, "invalid_api_key"),
        ({"Authorization": f"Bearer {revoked_key}"}, "api_key_revoked"),
    ):
        with httpx.Client(base_url=stack.api_url, headers=headers) as client:
            for method, path, json_body in (
                ("POST", "/v1/jobs", body),
                ("GET", "/v1/attributes", None),
                ("POST", "/v1/uploads", {}),
            ):
                answer = client.request(method, path, json=json_body)
                _check(answer, 401, code)
                assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert (_job_rows(stack), stack.queue_length()) == (before, queued)
