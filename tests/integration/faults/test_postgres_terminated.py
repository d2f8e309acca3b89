"""(b) PostgreSQL backends terminated mid-batch (issue #14: jobs failed with internal_error).

While a batch of strength-sweep jobs runs (5 results each), every connection to the stack's
database — the API's, the workers', the sweep's — is ended with ``pg_terminate_backend``,
four times over about 10 s. Every job must still succeed exactly once (each of its result
objects written once), none may fail with internal_error, and the API must answer a read
right after each round (its pool notices dead connections instead of answering 500).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from tests.integration.faults.conftest import Answer, FaultStack, Finished, summarize

JOBS = 60
SWEEP = {"edits": ["smile=-2:2:5"]}  # 5 results a job: more writes to count
ROUNDS = 4
ROUND_EVERY_S = 2.5
SETTLE_S = 120.0


@dataclass
class Terminations:
    terminated: list[int]  # backends ended per round
    answers: list[Answer]  # GET /v1/jobs/{id} right after each round
    open_after_last_round: int  # jobs still queued or running then
    finished: Finished


@pytest.fixture(scope="module")
def terminations(stack: FaultStack) -> Terminations:
    ids = stack.submit_batch(JOBS, **SWEEP)
    stack.wait_mid_batch(ids)
    terminated, answers = [], []
    for round_ in range(ROUNDS):
        if round_:
            time.sleep(ROUND_EVERY_S)
        terminated.append(stack.services.postgres.terminate_backends(stack.database))
        answers.append(stack.call("GET", f"/v1/jobs/{ids[0]}"))
        stack.note(f"round {round_ + 1}: terminated {terminated[-1]} backend(s); "
                   f"{summarize(answers[-1:])}")
    still_open = sum(row["status"] in ("queued", "running") for row in stack.rows(ids).values())
    return Terminations(terminated, answers, still_open, stack.finish(ids, SETTLE_S))


def test_the_api_reconnects_after_its_connections_are_terminated(
    terminations: Terminations,
) -> None:
    bad = [str(a) for a in terminations.answers if a.status != 200]
    assert not bad, "right after pg_terminate_backend:\n" + "\n".join(bad)


def test_every_job_succeeds_exactly_once(stack: FaultStack, terminations: Terminations) -> None:
    # The faults hit a live stack: connections were there to end in every round, and the
    # batch was still running after the last one.
    assert all(count > 0 for count in terminations.terminated), terminations.terminated
    assert terminations.open_after_last_round > 0, "the batch ended before the last round"
    rows = terminations.finished.require()
    internal = [row["id"] for row in rows.values() if row["error_code"] == "internal_error"]
    assert not internal, f"jobs failed with internal_error: {internal}\n{stack.report()}"
    stack.assert_succeeded_once(rows)
