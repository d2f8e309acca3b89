"""(d) Redis down for about 10 s mid-batch (issue #14: POST /v1/jobs and /v1/attributes
answered 500).

Redis is shut down (``SHUTDOWN SAVE``: it comes back with its data, as after a restart or a
network cut) while a batch runs. Meanwhile submissions answer 202 (the rows are written; the
workers' sweep sends the message once Redis is back) or 503 broker_unavailable with
Retry-After, and the reads — a job, a batch, the attributes — keep answering 200. Once Redis
is back, every job, those accepted during the outage included, completes exactly once.
"""

from __future__ import annotations

import json
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
    batch_id: str
    accepted: list[str]
    finished: Finished


@pytest.fixture(scope="module")
def outage(stack: FaultStack) -> Outage:
    ids = stack.submit_batch(JOBS)
    batch_id = stack.rows(ids[:1])[ids[0]]["batch_id"]
    stack.wait_mid_batch(ids)
    answers: list[Answer] = []
    with stack.services.redis_down():
        down_at = time.monotonic()
        stack.note("Redis stopped")
        while time.monotonic() - down_at < OUTAGE_S:
            answers += [
                stack.call("POST", "/v1/jobs", json=stack.job_body(len(answers))),
                stack.call("POST", "/v1/batches", json=stack.batch_body(2)),
                stack.call("GET", f"/v1/jobs/{ids[0]}"),
                stack.call("GET", f"/v1/batches/{batch_id}"),
                stack.call("GET", "/v1/attributes"),
            ]
            time.sleep(0.5)
        stack.note(f"Redis starting again after {time.monotonic() - down_at:.1f} s; "
                   f"answers: {summarize(answers)}")
    stack.note("Redis back")
    accepted = [job_id for answer in answers for job_id in _accepted(stack, answer)]
    return Outage(answers, batch_id, accepted, stack.finish(ids + accepted, SETTLE_S))


def _accepted(stack: FaultStack, answer: Answer) -> list[str]:
    if answer.method != "POST" or answer.status != 202:
        return []
    body = json.loads(answer.body)
    if answer.path == "/v1/jobs":
        return [body["id"]]
    with stack.http() as client:
        page = client.get(f"/v1/batches/{body['id']}", params={"limit": 1000}).json()
    return [job["id"] for job in page["jobs"]]


def _acceptable(answer: Answer) -> bool:
    if answer.method == "GET":
        return answer.status == 200
    if answer.status == 202:
        return True
    return (
        answer.status == 503
        and answer.code == "broker_unavailable"
        and (answer.retry_after or "").isdigit()
        and int(answer.retry_after or 0) > 0
    )


def test_no_500_while_redis_is_down(outage: Outage) -> None:
    assert outage.answers, "no request was made while Redis was down"
    bad = [str(a) for a in outage.answers if not _acceptable(a)]
    assert not bad, "while Redis was down:\n" + "\n".join(bad)


def test_every_accepted_job_completes_exactly_once(stack: FaultStack, outage: Outage) -> None:
    stack.assert_succeeded_once(outage.finished.require())
