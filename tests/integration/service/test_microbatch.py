"""Micro-batching: one task runs several queued jobs as one pipeline batch, and each job
gets exactly the result it gets when it runs alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.integration.service.conftest import BATCH_SIZE, Stack, decode_png

OPTIONS = {"suppressor": "poisson"}


def test_micro_batched_jobs_match_single_jobs(stack: Stack, small_faces: list[Path]) -> None:
    faces = small_faces[4 : 4 + BATCH_SIZE]
    edits = ["smile=+3", "age=-2", "pose=+1.5@0-4", "glasses=+2"]
    with stack.client() as client:
        keys = [stack.upload(client, p.read_bytes()) for p in faces]
        items = [{"input_key": k, "edits": [e]} for k, e in zip(keys, edits, strict=True)]
        with stack.paused():  # all queued before any worker looks: one claim takes them all
            batch = client.post("/v1/batches", json={"items": items, "options": OPTIONS}).json()
            # one message per FACEDIT_BATCH_SIZE jobs, not one per job (a worker's poll that
            # was already in flight when consumers were paused may have taken it: ≤ 1)
            assert stack.queue_length() <= 1
        batched = stack.wait_batch(client, batch["id"])["jobs"]
        singles = []
        for key, edit in zip(keys, edits, strict=True):  # one at a time: batches of one
            job = client.post("/v1/jobs", json={"input_key": key, "edits": [edit],
                                                 "options": OPTIONS}).json()
            singles.append(stack.wait_job(client, job["id"]))
    assert [job["status"] for job in batched + singles] == ["succeeded"] * (2 * len(faces))
    assert {job["metrics"]["batch_size"] for job in batched} == {len(faces)}
    assert {job["metrics"]["batch_size"] for job in singles} == {1}
    assert len({stack.job_row(job["id"]).worker_id for job in batched}) == 1
    for together, alone in zip(batched, singles, strict=True):
        a = decode_png(stack.storage.get(stack.storage.key_from_uri(together["result"]["uri"])))
        b = decode_png(stack.storage.get(stack.storage.key_from_uri(alone["result"]["uri"])))
        diff = np.abs(a.astype(int) - b.astype(int))
        assert diff.max() <= 1 and diff.mean() < 0.01, (diff.max(), diff.mean())
    # The edits did something: results differ from each other.
    first = decode_png(stack.storage.get(stack.storage.key_from_uri(singles[0]["result"]["uri"])))
    second = decode_png(stack.storage.get(stack.storage.key_from_uri(singles[1]["result"]["uri"])))
    assert not np.array_equal(first, second)
