"""(f) A deeply nested JSON body (issue #14: 400 http_400 instead of invalid_json).

100,000 nested ``[`` (or objects) make Python's JSON parser give up with RecursionError; the
API must answer 400 invalid_json like for any other unreadable body, on every endpoint that
takes one, and keep serving afterwards. No workers are needed.
"""

from __future__ import annotations

import pytest

from tests.integration.faults.conftest import FaultStack, StackConfig

DEPTH = 100_000
BODIES = {
    "arrays": "[" * DEPTH,
    "closed arrays": "[" * DEPTH + "]" * DEPTH,
    "objects": '{"a":' * DEPTH + "1" + "}" * DEPTH,
}


@pytest.fixture(scope="module")
def stack_config() -> StackConfig:
    return StackConfig(workers=0)


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/batches", "/v1/uploads"])
@pytest.mark.parametrize("shape", sorted(BODIES))
def test_deeply_nested_json_is_invalid_json(stack: FaultStack, path: str, shape: str) -> None:
    answer = stack.call("POST", path, content=BODIES[shape],
                        headers={"Content-Type": "application/json"})
    assert (answer.status, answer.code) == (400, "invalid_json"), str(answer)
    assert stack.api.alive, stack.api.log()[-3000:]
    assert stack.call("GET", "/healthz").status == 200
