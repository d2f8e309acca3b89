"""The Celery task overlaps I/O with the model (issue #16): one task keeps claiming batches
while jobs are queued, the next batch claimed and fetched while the current one runs, and
every job it holds — prefetched ones included — keeps its lease (3 s in this stack)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.integration.service.conftest import BATCH_SIZE, MAX_BATCH_IMAGES, Stack

TASK_RESULT = re.compile(r"Task facedit\.process_jobs\[[^\]]+\] succeeded in [0-9.]+s: (\{.*\})")


def test_a_task_runs_batch_after_batch_and_holds_its_prefetched_jobs(
    stack: Stack, small_faces: list[Path]
) -> None:
    jobs = MAX_BATCH_IMAGES
    assert jobs >= 3 * BATCH_SIZE
    logs_before = {w.name: len(w.log()) for w in stack.workers}
    with stack.client() as client:
        keys = [stack.upload(client, small_faces[i % 8].read_bytes()) for i in range(jobs)]
        with stack.paused():
            batch = client.post("/v1/batches", json={
                "items": [{"input_key": key} for key in keys], "edits": ["smile=+1"],
                "options": {"suppressor": "poisson", "output_size": 512},
            }).json()  # fmt: skip
        done = stack.wait_batch(client, batch["id"], timeout_s=180)
    assert done["counts"]["succeeded"] == jobs, done["counts"]

    results = []
    for worker in stack.workers:
        new = worker.log()[logs_before[worker.name]:]
        results += [ast.literal_eval(m) for m in TASK_RESULT.findall(new)]
    ran = [r for r in results if r.get("claimed")]
    # (earlier tests' jobs, still queued, may run in the same tasks)
    assert sum(r["claimed"] for r in ran) >= jobs, results
    # Fewer tasks than batches: some task claimed a batch while running the one before.
    assert max(r.get("batches", 1) for r in ran) >= 2, results
    rows = [stack.job_row(job["id"]) for job in done["jobs"]]
    # Every job ran once: a prefetched job waiting its turn longer than the 3 s lease was
    # kept alive by the heartbeat, never requeued by the sweep.
    assert [row.attempts for row in rows] == [1] * jobs
    for row in rows:
        assert stack.storage.exists(f"outputs/{row.batch_id}/{row.id}/result.png")
