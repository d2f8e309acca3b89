"""(g) A poison job: an input that kills the worker process every time it is tried.

Here that is a task that outlives the Celery hard time limit (FACEDIT_TASK_TIME_LIMIT_SECONDS):
dlib's CNN face detector on a large unaligned photo takes about a minute on a 2-core CPU
(``align: always, detector: cnn``), so each try ends with its pool process killed. That is the
"worker lost" path: the lease expires, the sweep requeues the job, and after
FACEDIT_MAX_ATTEMPTS (2) it fails with worker_lost. The normal jobs submitted with it all
succeed, no job stays running, and the workers are free again once the poison job has failed
(a new batch runs at once instead of waiting for the detector to finish).

The lease (8 s) outlasts the time limit (6 s) on purpose: dlib's detector holds the GIL, so the
heartbeat thread cannot renew the lease while it runs, and a shorter lease would have the
sweep requeue the job while its first try is still running — worker_lost without any process
being killed, which is not the path under test. One job per task (FACEDIT_BATCH_SIZE=1): jobs
claimed in the same task as the poison one would die with it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.faults.conftest import FaultStack, StackConfig, describe_row

MAX_ATTEMPTS = 2
TIME_LIMIT_S = 6
LEASE_S = 8
NORMAL_JOBS = 10
# 2048×1365: searched at 1600×1066, about 55 s for the CNN detector on one core here.
POISON_PHOTO = "deepface__img57.jpg"
POISON = {"edits": ["smile=+2"], "align": "always", "detector": "cnn"}
# Two tries, each: the time limit, the rest of the lease, a sweep, a pool process restart.
SETTLE_S = 90.0
# Jobs submitted once the poison job has failed run on workers that are free again; a
# detector left running would hold them for most of a minute.
FREE_AGAIN_S = 20.0


@pytest.fixture(scope="module")
def stack_config() -> StackConfig:
    return StackConfig(settings={
        "FACEDIT_TASK_TIME_LIMIT_SECONDS": str(TIME_LIMIT_S),
        "FACEDIT_LEASE_SECONDS": str(LEASE_S),
        "FACEDIT_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "FACEDIT_BATCH_SIZE": "1",
    })  # fmt: skip


@pytest.fixture(scope="module")
def poison_photo(faces_dir: Path) -> Path:
    path = faces_dir / "photos" / POISON_PHOTO
    if not path.is_file():
        raise RuntimeError(f"the poison job's photo {path} is missing (../shared/data/faces)")
    return path


def test_poison_job_fails_with_worker_lost_and_the_rest_succeed(
    stack: FaultStack, poison_photo: Path
) -> None:
    poison_key = stack.upload(poison_photo, POISON_PHOTO)
    poison = stack.submit_job({"input_key": poison_key, **POISON})
    stack.note("submitted the poison job")
    normal = stack.submit_batch(NORMAL_JOBS)
    rows = stack.wait_terminal([poison, *normal], SETTLE_S)
    row = rows[poison]
    assert (row["status"], row["error_code"], row["attempts"]) == (
        "failed", "worker_lost", MAX_ATTEMPTS
    ), f"the poison job:\n{describe_row(row)}\n{stack.report()}"
    assert any(f"Hard time limit ({TIME_LIMIT_S}s) exceeded" in w.log() for w in stack.workers), (
        "no task hit the hard time limit: the poison job failed some other way\n"
        + stack.report()
    )
    stack.assert_succeeded_once({job_id: rows[job_id] for job_id in normal})

    submitted = time.monotonic()
    after = stack.submit_batch(NORMAL_JOBS)
    rows = stack.wait_terminal(after, FREE_AGAIN_S, "jobs submitted after the poison job failed")
    stack.note(f"the next batch took {time.monotonic() - submitted:.1f} s")
    stack.assert_succeeded_once(rows)
