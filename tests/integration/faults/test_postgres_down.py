"""(e) PostgreSQL down for about 10 s mid-batch (issue #14: every authenticated request
answered 500).

The stack's cluster is stopped (``pg_ctl stop -m fast``) while a batch runs and started again
on the same port. Meanwhile an authenticated read and a submission answer 503
database_unavailable with Retry-After, /healthz stays 200 and /readyz says 503. Once the
database is back, every job submitted before the outage succeeds exactly once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from tests.integration.faults.conftest import Answer, FaultStack, Finished, summarize

JOBS = 40
OUTAGE_S = 10.0
SETTLE_S = 120.0


@dataclass
class Outage:
    answers: list[Answer]
    finished: Finished


@pytest.fixture(scope="module")
def outage(stack: FaultStack) -> Outage:
    ids = stack.submit_batch(JOBS)
    stack.wait_mid_batch(ids)
    answers: list[Answer] = []
    with stack.services.postgres_down():
        down_at = time.monotonic()
        stack.note("PostgreSQL stopped")
        while time.monotonic() - down_at < OUTAGE_S:
            answers += [
                stack.call("GET", f"/v1/jobs/{ids[0]}"),
                stack.call("POST", "/v1/jobs", json=stack.job_body(len(answers))),
                stack.call("GET", "/healthz"),
                stack.call("GET", "/readyz"),
            ]
            time.sleep(0.5)
        stack.note(f"PostgreSQL starting again after {time.monotonic() - down_at:.1f} s; "
                   f"answers: {summarize(answers)}")
    stack.note("PostgreSQL back")
    return Outage(answers, stack.finish(ids, SETTLE_S))


def _acceptable(answer: Answer) -> bool:
    if answer.path == "/healthz":
        return answer.status == 200
    if answer.path == "/readyz":
        return answer.status == 503
    return (
        answer.status == 503
        and answer.code == "database_unavailable"
        and (answer.retry_after or "").isdigit()
        and int(answer.retry_after or 0) > 0
    )


def test_503_database_unavailable_never_500_while_postgres_is_down(outage: Outage) -> None:
    assert outage.answers, "no request was made while PostgreSQL was down"
    bad = [str(a) for a in outage.answers if not _acceptable(a)]
    assert not bad, "while PostgreSQL was down:\n" + "\n".join(bad)


def test_jobs_submitted_before_the_outage_succeed_exactly_once(
    stack: FaultStack, outage: Outage
) -> None:
    stack.assert_succeeded_once(outage.finished.require())
