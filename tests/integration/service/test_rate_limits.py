"""Per-key rate limits (api/ratelimit.py) on the real stack: requests per second with a burst
and images per minute, counted in Redis, so two API processes share one limit; 429
``rate_limited`` with Retry-After and the RateLimit fields of
draft-ietf-httpapi-ratelimit-headers-06; unlimited (never an error) while their Redis is down.

Each test runs APIs of its own with low limits (the stack's API has them high) and a new key.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from shared.jobs import ApiKeys, JobStatus, NewJob
from tests.fixtures.services import free_ports
from tests.integration.service.conftest import REPO, ApiServer, Stack

FIELDS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy")


def _new_key(stack: Stack) -> tuple[str, str]:
    """(owner, key) of a fresh owner, so no other test's requests count."""
    owner = f"limited-{uuid.uuid4().hex[:10]}"
    return owner, ApiKeys(stack.store).create(owner, "rate limit tests")[1]


@contextlib.contextmanager
def _api(stack: Stack, key: str, **settings: Any) -> Iterator[httpx.Client]:
    """An API of its own with these settings, and a client with ``key``."""
    app = create_app(stack.settings.model_copy(update=settings))
    with ApiServer(app) as url, httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as client:
        yield client


def _fields(answer: httpx.Response) -> dict[str, str]:
    return {name: answer.headers[name] for name in FIELDS if name in answer.headers}


def test_requests_past_the_limit_get_429_with_retry_after(stack: Stack) -> None:
    _, key = _new_key(stack)
    with _api(stack, key, rate_limit_requests_per_second=3, rate_limit_burst_seconds=3) as client:
        answers = [client.get("/v1/jobs") for _ in range(13)]
        ok = [a for a in answers if a.status_code == 200]
        refused = [a for a in answers if a.status_code == 429]
        assert len(ok) == 9 and len(refused) == 4, [a.status_code for a in answers]
        assert answers[:9] == ok  # the burst first, then the refusals

        first = _fields(ok[0])
        assert first["RateLimit-Limit"] == "9"
        assert first["RateLimit-Policy"] == '9;w=3;comment="requests"'
        assert 0 < int(first["RateLimit-Reset"]) <= 3
        assert [int(a.headers["RateLimit-Remaining"]) for a in ok] == list(range(8, -1, -1))
        for answer in refused:
            assert answer.json()["error"]["code"] == "rate_limited", answer.text
            assert "FACEDIT_RATE_LIMIT_REQUESTS_PER_SECOND" in answer.json()["error"]["message"]
            assert 1 <= int(answer.headers["Retry-After"]) <= 3
            assert _fields(answer)["RateLimit-Remaining"] == "0"

        # Another key has a quota of its own; health, readiness and metrics are not limited.
        other = ApiKeys(stack.store).create("limited-other", "rate limit tests")[1]
        answer = client.get("/v1/jobs", headers={"Authorization": f"Bearer {other}"})
        assert answer.status_code == 200 and answer.headers["RateLimit-Remaining"] == "8"
        for path in ("/healthz", "/readyz", "/metrics"):
            answer = client.get(path)
            assert answer.status_code == 200 and not _fields(answer), (path, answer.headers)
        unauthenticated = client.get("/v1/jobs", headers={"Authorization": ""})
        assert unauthenticated.status_code == 401 and not _fields(unauthenticated)

        time.sleep(int(refused[-1].headers["Retry-After"]))
        again = client.get("/v1/jobs")
        assert again.status_code == 200, again.text


def test_images_per_minute_count_batches_and_sweep_steps(
    stack: Stack, small_faces: list[Path]
) -> None:
    owner, key = _new_key(stack)
    with _api(stack, key, rate_limit_images_per_minute=10) as client:
        face = stack.upload(client, small_faces[0].read_bytes())
        sweep = {"input_key": face, "edits": ["smile=-1:1:4"]}  # 4 images

        first = client.post("/v1/jobs", json=sweep, headers={"Idempotency-Key": "first"})
        assert first.status_code == 202, first.text
        fields = _fields(first)
        assert fields["RateLimit-Policy"].endswith(', 10;w=60;comment="images"'), fields
        assert (fields["RateLimit-Limit"], fields["RateLimit-Remaining"]) == ("10", "6")
        assert 55 <= int(fields["RateLimit-Reset"]) <= 60
        assert client.post("/v1/jobs", json=sweep).status_code == 202  # 8 of 10

        # 2 items × 2 steps = 4 images: more than the 2 left; nothing is created.
        batch = {"items": [{"input_key": face}] * 2, "edits": ["age=0:1:2"]}
        refused = client.post("/v1/batches", json=batch)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "rate_limited"
        assert "FACEDIT_RATE_LIMIT_IMAGES_PER_MINUTE" in refused.json()["error"]["message"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert _fields(refused)["RateLimit-Remaining"] == "2"
        assert len(client.get("/v1/jobs").json()["jobs"]) == 2

        # A replay queues nothing, so it counts nothing.
        replay = client.post("/v1/jobs", json=sweep, headers={"Idempotency-Key": "first"})
        assert replay.status_code == 202 and replay.headers["Idempotent-Replayed"] == "true"
        one = client.post("/v1/jobs", json={"input_key": face, "edits": ["smile=+1"]})
        assert one.status_code == 202, one.text
        assert _fields(one)["RateLimit-Remaining"] == "1"

        # More images than a minute allows can never pass: 422, not 429.
        huge = client.post("/v1/jobs", json={"input_key": face, "edits": ["smile=-1:1:11"]})
        assert huge.status_code == 422, huge.text
        assert huge.json()["error"]["code"] == "too_many_images"

        # A retry queues its job's images again: 4 do not fit in the 1 left.
        failed = stack.store.create_batch(
            [NewJob(stack.storage.uri(face), [
                {"attribute": "smile", "sweep": {"start": -1.0, "end": 1.0, "steps": 4}}
            ])],
            owner=owner,
        ).job_ids[0]  # fmt: skip
        assert stack.store.fail(failed, "invalid_image", "made to fail by the test")
        retry = client.post(f"/v1/jobs/{failed}/retry")
        assert retry.status_code == 429, retry.text
        assert stack.job_row(failed).status is JobStatus.FAILED


def test_two_api_processes_share_one_limit(stack: Stack) -> None:
    """An API in this process and one started with `facedit api` in another, with the same
    settings: the sum of their 200s stays within the one limit both count in Redis."""
    _, key = _new_key(stack)
    limits = {"rate_limit_requests_per_second": 1, "rate_limit_burst_seconds": 20}
    port = free_ports(1)[0]
    env = {**stack.env, **{f"FACEDIT_{k.upper()}": str(v) for k, v in limits.items()}}
    log_path = stack.tmp / f"api-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from facedit.cli import app; sys.exit(app())",
             "api", "--port", str(port), "--no-access-log", "--log-level", "warning"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    other = httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )  # fmt: skip
    try:
        stack.wait_for(lambda: _answers(other), timeout_s=60, what="the second API process")
        with _api(stack, key, **limits) as here:
            answers: dict[str, list[int]] = {"here": [], "there": []}
            for _ in range(20):
                answers["here"].append(here.get("/v1/jobs").status_code)
                answers["there"].append(other.get("/v1/jobs").status_code)
    finally:
        other.close()
        process.terminate()
        process.wait(timeout=30)
    statuses = answers["here"] + answers["there"]
    assert statuses.count(200) == 20 and statuses.count(429) == 20, (answers, log_path.read_text())
    assert 200 in answers["there"] and 429 in answers["there"], answers
    assert 200 in answers["here"] and 429 in answers["here"], answers


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


def test_an_unreachable_limit_store_lets_requests_through(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """Fail open: with nothing listening where the limits are counted, every request is
    answered as without limits (no 429, no 500, no RateLimit fields), and that is logged."""
    _, key = _new_key(stack)
    caplog.set_level(logging.WARNING, logger="api.ratelimit")
    with _api(
        stack, key, rate_limit_storage_url="redis://127.0.0.1:1/0",
        rate_limit_requests_per_second=1, rate_limit_burst_seconds=1,
    ) as client:  # fmt: skip
        answers = [client.get("/v1/jobs") for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    assert not any(_fields(a) for a in answers)
    warnings = [r for r in caplog.records if "rate limits not enforced" in r.getMessage()]
    assert len(warnings) == 1, caplog.text
    assert "127.0.0.1:1" in warnings[0].getMessage()
