"""Submitting, reading and retrying jobs and batches; idempotency; owner isolation."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx

from shared.jobs import JobStatus
from tests.integration.service.conftest import Stack, decode_png

NAIVE = {"suppressor": "naive"}


def test_job_succeeds_with_result_in_s3_and_state_in_sql(
    stack: Stack, small_faces: list[Path]
) -> None:
    with stack.client() as client:
        key = stack.upload(client, small_faces[0].read_bytes(), small_faces[0].name)
        answer = client.post(
            "/v1/jobs",
            json={"input_key": key, "name": small_faces[0].name, "edits": ["smile=+2"],
                  "options": {"suppressor": "poisson", "intermediates": True}, "align": "never"},
        )  # fmt: skip
        assert answer.status_code == 202, answer.text
        submitted = answer.json()
        assert answer.headers["Location"] == f"/v1/jobs/{submitted['id']}"
        assert submitted["status"] in ("queued", "running", "succeeded")
        job = stack.wait_job(client, submitted["id"])
        assert job["status"] == "succeeded", job
        result = httpx.get(job["result"]["url"], timeout=30)
    assert result.status_code == 200
    assert decode_png(result.content).shape == (256, 256, 3)
    assert job["progress"] == 1.0 and job["error_code"] is None
    assert job["created_at"] <= job["started_at"] <= job["finished_at"]
    assert job["input_name"] == small_faces[0].name
    assert job["edits"] == [{"attribute": "smile", "strength": 2.0}]
    assert job["options"]["align"] == "never" and job["options"]["format"] == "png"
    assert job["options"]["pipeline"]["suppressor"] == "poisson"
    expected_key = f"outputs/{job['batch_id']}/{job['id']}/result.png"
    assert job["result"]["uri"] == stack.storage.uri(expected_key)
    assert stack.storage.get(expected_key) == result.content
    assert {"mask", "edited", "naive"} <= set(job["intermediates"])
    for name, stored in job["intermediates"].items():
        assert stack.storage.exists(f"outputs/{job['batch_id']}/{job['id']}/{name}.png")
        assert httpx.get(stored["url"], timeout=30).status_code == 200
    row = stack.job_row(job["id"])
    assert row.status is JobStatus.SUCCEEDED and row.owner == "alice"
    assert row.output_uri == job["result"]["uri"] and row.attempts == 1
    assert row.input_sha256 is not None and len(row.input_sha256) == 64
    assert {"fetch", "decode", "store"} <= set(row.metrics["stages"])


def test_batch_counts_and_pages(stack: Stack, small_faces: list[Path]) -> None:
    with stack.client() as client:
        keys = [stack.upload(client, path.read_bytes()) for path in small_faces[:5]]
        broken = stack.upload(client, b"this is not an image", "broken.png")
        items = [{"input_key": k, "name": f"face{i}"} for i, k in enumerate(keys)]
        items.append({"input_key": broken, "name": "broken", "edits": ["age=+1"]})
        answer = client.post(
            "/v1/batches", json={"items": items, "edits": ["smile=+1"], "options": NAIVE}
        )
        assert answer.status_code == 202, answer.text
        batch = answer.json()
        assert batch["total"] == 6 and len(batch["jobs"]) == 6
        assert answer.headers["Location"] == f"/v1/batches/{batch['id']}"
        done = stack.wait_batch(client, batch["id"])
        assert done["counts"] == {
            "queued": 0, "running": 0, "succeeded": 5, "failed": 1, "cancelled": 0
        }  # fmt: skip
        assert [job["input_name"] for job in done["jobs"]] == [*(f"face{i}" for i in range(5)),
                                                              "broken"]
        failed = done["jobs"][-1]
        assert failed["error_code"] == "invalid_image" and failed["status"] == "failed"
        assert failed["edits"] == [{"attribute": "age", "strength": 1.0}]
        page = client.get(f"/v1/batches/{batch['id']}", params={"offset": 2, "limit": 2}).json()
        assert [job["position"] for job in page["jobs"]] == [2, 3]
        assert page["next_offset"] == 4 and page["total"] == 6
        last = client.get(f"/v1/batches/{batch['id']}", params={"offset": 4, "limit": 2}).json()
        assert last["next_offset"] is None
        only_failed = client.get(
            f"/v1/batches/{batch['id']}", params={"status": "failed"}
        ).json()
        assert [job["input_name"] for job in only_failed["jobs"]] == ["broken"]


def test_idempotency_key_replays_or_conflicts(stack: Stack, small_faces: list[Path]) -> None:
    token = uuid.uuid4().hex
    with stack.client() as client:
        key = stack.upload(client, small_faces[1].read_bytes())
        body = {"input_key": key, "edits": ["pose=+1"], "options": NAIVE}
        first = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": token})
        again = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": token})
        assert first.status_code == again.status_code == 202
        assert again.json()["id"] == first.json()["id"]
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert "Idempotent-Replayed" not in first.headers
        batch_id = first.json()["batch_id"]
        assert stack.store.get_batch(batch_id).job_ids == (first.json()["id"],)
        other = client.post(
            "/v1/jobs", json={**body, "edits": ["pose=-1"]}, headers={"Idempotency-Key": token}
        )
        assert other.status_code == 422
        assert other.json()["error"]["code"] == "idempotency_conflict"
        as_batch = client.post(
            "/v1/batches", json={"items": [{"input_key": key}], "edits": ["pose=+1"]},
            headers={"Idempotency-Key": token},
        )  # fmt: skip
        assert as_batch.status_code == 422
        stack.wait_job(client, first.json()["id"])
    with stack.client("bob") as client:
        # Keys are per owner: bob's same key is his own request (his input is refused as
        # alice's upload, which proves it was not answered from alice's batch).
        bob = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": token})
        assert bob.status_code == 403 and bob.json()["error"]["code"] == "forbidden_input"


def test_failed_job_is_retried(stack: Stack, small_faces: list[Path]) -> None:
    with stack.client() as client:
        key = stack.upload(client, b"\x89PNG\r\n\x1a\n truncated", "bad.png")
        job = client.post("/v1/jobs", json={"input_key": key, "edits": ["smile=+1"],
                                             "options": NAIVE}).json()
        failed = stack.wait_job(client, job["id"])
        assert failed["status"] == "failed" and failed["error_code"] == "invalid_image"
        not_yet = client.post(f"/v1/jobs/{job['id']}/cancel")
        assert not_yet.status_code == 409
        assert not_yet.json()["error"]["code"] == "job_not_cancellable"
        stack.storage.put(key, small_faces[2].read_bytes())  # the input is fixed
        retried = client.post(f"/v1/jobs/{job['id']}/retry")
        assert retried.status_code == 202, retried.text
        assert retried.json()["status"] in ("queued", "running", "succeeded")
        assert retried.json()["error_code"] is None
        done = stack.wait_job(client, job["id"])
        assert done["status"] == "succeeded" and done["attempts"] == 1
        again = client.post(f"/v1/jobs/{job['id']}/retry")
        assert again.status_code == 409 and again.json()["error"]["code"] == "job_not_retryable"
    assert stack.storage.exists(f"outputs/{done['batch_id']}/{done['id']}/result.png")


def test_owners_see_only_their_own_jobs(stack: Stack, small_faces: list[Path]) -> None:
    with stack.client("alice") as alice:
        key = stack.upload(alice, small_faces[3].read_bytes())
        job = alice.post("/v1/jobs", json={"input_key": key, "edits": ["smile=+1"],
                                            "options": NAIVE}).json()
        stack.wait_job(alice, job["id"])
    with stack.client("bob") as bob:
        for method, path in (
            ("GET", f"/v1/jobs/{job['id']}"),
            ("POST", f"/v1/jobs/{job['id']}/cancel"),
            ("POST", f"/v1/jobs/{job['id']}/retry"),
            ("GET", f"/v1/batches/{job['batch_id']}"),
            ("POST", f"/v1/batches/{job['batch_id']}/cancel"),
        ):
            answer = bob.request(method, path)
            assert answer.status_code == 404, (method, path, answer.text)
            assert answer.json()["error"]["code"] in ("job_not_found", "batch_not_found")
        result_key = stack.storage.key_from_uri(stack.job_row(job["id"]).output_uri)
        for body in ({"input_key": key}, {"input_key": result_key}):
            refused = bob.post("/v1/jobs", json={**body, "edits": ["smile=+1"]})
            assert refused.status_code == 403, refused.text
            assert refused.json()["error"]["code"] == "forbidden_input"
    with stack.client("alice") as alice:
        # alice may edit her own result again.
        chained = alice.post("/v1/jobs", json={"input_key": result_key, "edits": ["age=+1"],
                                                "options": NAIVE, "align": "never"})
        assert chained.status_code == 202, chained.text
        done = stack.wait_job(alice, chained.json()["id"])
        assert done["status"] == "succeeded", (done["error_code"], done["error_message"])


def test_sweep_job_stores_each_step_the_latent_and_the_suppressor(
    stack: Stack, small_faces: list[Path]
) -> None:
    """A sweep is one job with one result per step; auto runs Poisson with the toy models."""
    from shared.editing.latents import decode_latent

    with stack.client() as client:
        key = stack.upload(client, small_faces[1].read_bytes(), small_faces[1].name)
        answer = client.post("/v1/jobs", json={
            "input_key": key, "align": "never", "format": "jpg", "quality": 90,
            "save_latents": True, "options": {"intermediates": True},
            "edits": [{"attribute": "smile", "sweep": {"start": -2, "end": 2, "steps": 3}},
                      "age=-1"],
        })  # fmt: skip
        assert answer.status_code == 202, answer.text
        job = stack.wait_job(client, answer.json()["id"])
        catalog = client.get("/v1/attributes").json()
    assert job["status"] == "succeeded", job
    assert job["suppressor"] == "poisson" == catalog["auto_suppressor"]
    assert job["options"]["pipeline"]["suppressor"] == "auto"
    assert [r["label"] for r in job["results"]] == ["smile-2,age-1", "smile+0,age-1",
                                                    "smile+2,age-1"]
    assert job["result"] == job["results"][0]["result"]
    prefix = f"outputs/{job['batch_id']}/{job['id']}"
    steps = []
    for k, entry in enumerate(job["results"]):
        assert entry["result"]["uri"] == stack.storage.uri(f"{prefix}/result.{k}.jpg")
        data = httpx.get(entry["result"]["url"], timeout=30).content
        assert data.startswith(b"\xff\xd8")
        steps.append(data)
        assert stack.storage.exists(f"{prefix}/mask.{k}.png")
        assert set(entry["intermediates"]) >= {"mask", "naive", "poisson"}
    assert len(set(steps)) == 3  # three different edits
    latent = decode_latent(httpx.get(job["latent"]["url"], timeout=30).content)
    assert latent.w.shape[0] == 1 and latent.input_sha256 == stack.job_row(job["id"]).input_sha256
