"""(c) Redis loses its data while the workers are idle (issue #14: the API then refused all
work with 503 attributes_unavailable until a worker restarted, because the attribute
catalog lived in Redis and idle workers never published it again).

After a first batch has run, Redis is emptied (FLUSHALL: the catalog, the queue, kombu's
bindings and the sweep lock go). Past any cache the API keeps, submissions must still be
accepted and /v1/attributes answered, and the accepted jobs must complete exactly once —
with nothing restarted.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pytest

from tests.integration.faults.conftest import Answer, FaultStack, Finished, summarize

WARM_UP_JOBS = 4
# Longer than the API kept the catalog cached (5 s), so the old code's 503 shows.
IDLE_AFTER_FLUSH_S = 6.0
SETTLE_S = 60.0


@dataclass
class AfterFlush:
    answers: list[Answer]
    accepted: list[str]
    finished: Finished


@pytest.fixture(scope="module")
def after_flush(stack: FaultStack) -> AfterFlush:
    stack.wait_terminal(stack.submit_batch(WARM_UP_JOBS), 60, "warm-up jobs")
    stack.services.redis.flushall()
    stack.note("FLUSHALL")
    time.sleep(IDLE_AFTER_FLUSH_S)
    answers = [stack.call("GET", "/v1/attributes")]
    accepted: list[str] = []
    for index in range(2):
        answers.append(stack.call("POST", "/v1/jobs", json=stack.job_body(index)))
    answers.append(stack.call("POST", "/v1/batches", json=stack.batch_body(6)))
    for answer in answers:
        if answer.method == "POST" and answer.status == 202:
            accepted.extend(_job_ids(stack, answer))
    stack.note(f"after FLUSHALL: {summarize(answers)}")
    return AfterFlush(answers, accepted, stack.finish(accepted, SETTLE_S))


def _job_ids(stack: FaultStack, answer: Answer) -> list[str]:
    body = json.loads(answer.body)
    if answer.path == "/v1/jobs":
        return [body["id"]]
    with stack.http() as client:
        page = client.get(f"/v1/batches/{body['id']}", params={"limit": 1000}).json()
    return [job["id"] for job in page["jobs"]]


def test_submissions_are_accepted_after_redis_lost_its_data(after_flush: AfterFlush) -> None:
    expected = {"GET": 200, "POST": 202}
    bad = [str(a) for a in after_flush.answers if a.status != expected[a.method]]
    assert not bad, "after FLUSHALL, with the workers idle:\n" + "\n".join(bad)


def test_accepted_jobs_complete_exactly_once(stack: FaultStack, after_flush: AfterFlush) -> None:
    assert after_flush.accepted, "no submission was accepted after FLUSHALL"
    stack.assert_succeeded_once(after_flush.finished.require())
