"""(a) S3 down for 30 s mid-batch (issue #14: the backlog used to fail with
storage_unavailable once its attempts were spent in a few sweeps).

SeaweedFS is stopped once the first jobs of a 40-job batch are running and started again
30 s later (same ports, same data). Every job — the batch and whatever was accepted during
the outage — must succeed exactly once; while S3 is down a submission (the API HEADs its
input) answers 202 or 503 storage_unavailable, never 500, and reading a job still works.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from tests.integration.faults.conftest import Answer, FaultStack, Finished, summarize

JOBS = 40
OUTAGE_S = 30.0
PROBE_EVERY_S = 3.0
# After S3 is back a job may still wait out its last backoff (≤ 60 s), then the backlog runs.
SETTLE_S = 150.0


@dataclass
class Outage:
    answers: list[Answer]
    accepted: list[str]  # jobs submitted (202) while S3 was down
    finished: Finished
    back_at: datetime  # when S3 answered again


@pytest.fixture(scope="module")
def outage(stack: FaultStack) -> Outage:
    ids = stack.submit_batch(JOBS)
    stack.wait_mid_batch(ids)
    answers: list[Answer] = []
    accepted: list[str] = []
    with stack.services.s3_down():
        down_at = time.monotonic()
        stack.note("S3 stopped")
        while time.monotonic() - down_at < OUTAGE_S:
            submitted = stack.call("POST", "/v1/jobs", json=stack.job_body(len(answers)))
            answers.append(submitted)
            if submitted.status == 202:
                accepted.append(submitted_id(submitted))
            answers.append(stack.call("GET", f"/v1/jobs/{ids[0]}"))
            time.sleep(max(0.0, min(PROBE_EVERY_S, OUTAGE_S - (time.monotonic() - down_at))))
        stack.note(f"S3 starting again after {time.monotonic() - down_at:.1f} s; "
                   f"answers: {summarize(answers)}")
    back_at = datetime.now(UTC)
    stack.note("S3 back")
    return Outage(answers, accepted, stack.finish(ids + accepted, SETTLE_S), back_at)


def submitted_id(answer: Answer) -> str:
    import json

    return json.loads(answer.body)["id"]


def test_no_500_while_s3_is_down(outage: Outage) -> None:
    def acceptable(answer: Answer) -> bool:
        if answer.method == "GET":
            return answer.status == 200  # presigning needs no S3 round trip
        return answer.status == 202 or (
            answer.status == 503 and answer.code == "storage_unavailable"
        )

    bad = [str(a) for a in outage.answers if not acceptable(a)]
    assert outage.answers, "no request was made while S3 was down"
    assert not bad, "while S3 was down:\n" + "\n".join(bad)


def test_every_job_succeeds_exactly_once(stack: FaultStack, outage: Outage) -> None:
    rows = outage.finished.require()  # none left queued or running
    stack.assert_succeeded_once(rows)
    # The outage was felt: some jobs were still waiting when S3 came back.
    assert any(row["finished_at"] > outage.back_at for row in rows.values()), (
        "every job finished before S3 came back: the fault missed the batch\n" + stack.report()
    )
