"""api/metrics.py: Prometheus gauges and histograms read from the shared state."""

from __future__ import annotations

import re

from tests.integration.service.conftest import Stack


def test_metrics_expose_jobs_queue_and_latency_histograms(stack: Stack, small_faces) -> None:
    with stack.client() as client:
        key = stack.upload(client, small_faces[0].read_bytes())
        job = client.post("/v1/jobs", json={"input_key": key, "edits": ["age=-1"],
                                             "options": {"suppressor": "naive"}}).json()
        assert stack.wait_job(client, job["id"])["status"] == "succeeded"
        text = client.get("/metrics").text
    succeeded = re.search(r'^facedit_jobs_total\{status="succeeded"\} (\S+)$', text, re.M)
    assert succeeded and float(succeeded.group(1)) >= 1
    assert re.search(r"^facedit_queue_depth \S+$", text, re.M)
    count = re.search(r"^facedit_job_seconds_count (\S+)$", text, re.M)
    assert count and float(count.group(1)) >= 1
    for stage in ("fetch", "decode", "store"):
        assert re.search(
            rf'^facedit_stage_seconds_bucket\{{le="\+Inf",stage="{stage}"\}} [1-9]', text, re.M
        ), stage
