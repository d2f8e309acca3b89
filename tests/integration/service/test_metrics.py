"""Prometheus metrics on the real stack: the workers count what they finish and observe the
durations (each job once, whichever worker ran it), every API replica reports the same
state gauges and only the cancellations it made itself — so sums over all targets are the
system's figures, with two GPU workers, a webhook worker and two API replicas."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from shared.core.telemetry import API, CATALOG, WORKER, specs_for
from shared.jobs import NewJob
from tests.integration.service.conftest import ApiServer, Stack

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> tuple[Samples, dict[str, str]]:
    """Samples (name, labels) → value, and the families' types, of one /metrics."""
    text = httpx.get(url, timeout=10).text
    samples: Samples = {}
    types = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, types


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, got), v in samples.items() if n == name and wanted <= got)


def summed(urls: list[str], name: str, **labels: str) -> float:
    return sum(total(scrape(url)[0], name, **labels) for url in urls)


def test_each_process_exports_the_catalogs_metrics(stack: Stack) -> None:
    """Every facedit family a process exports is in the catalog for that process, with its
    type (a labelled family appears with its first sample: stages once a job ran)."""
    with stack.client() as client:
        _, api_types = scrape(f"{client.base_url}/metrics")
    api = {spec.name: spec.kind for spec in specs_for(API)}
    assert api_types.keys() >= api.keys()
    assert {k: v for k, v in api_types.items() if k.startswith("facedit_")} == api
    worker = {spec.name: spec.kind for spec in specs_for(WORKER)}
    for process in stack.all_workers():
        _, types = scrape(process.metrics_url)
        exported = {k: v for k, v in types.items() if k.startswith("facedit_")}
        assert exported.items() <= worker.items(), (process.name, exported)
        # Series made at start: counted jobs and webhooks, job durations.
        assert exported.keys() >= worker.keys() - {"facedit_stage_seconds"}, process.name
    # Durations come from the workers only: an API replica must not report them.
    worker_only = {s.name for s in CATALOG if s.exported_by == (WORKER,)}
    assert not worker_only & set(api_types)


def test_jobs_are_counted_once_across_workers_and_api_replicas(
    stack: Stack, small_faces: list[Path]
) -> None:
    from api.app import create_app

    jobs = 6
    workers = [w.metrics_url for w in stack.all_workers()]

    def worker_figures() -> tuple[float, float, float]:
        return (
            summed(workers, "facedit_jobs_finished_total", status="succeeded"),
            summed(workers, "facedit_job_seconds_count", status="succeeded"),
            summed(workers, "facedit_stage_seconds_count", stage="fetch"),
        )

    with ApiServer(create_app(stack.settings)) as second_api, stack.client() as client:
        apis = [f"{stack.api_url}/metrics", f"{second_api}/metrics"]
        # Earlier tests' jobs first: a worker counts a job just after recording it (once its
        # batch is done), so the figures are compared from a quiet stack.
        def quiet() -> tuple[float, ...] | None:
            counts = stack.store.count_by_status()
            if counts.get("queued", 0) or counts.get("running", 0):
                return None
            first = worker_figures()
            time.sleep(0.5)
            return first if worker_figures() == first else None

        before = stack.wait_for(quiet, timeout_s=60, what="earlier jobs to be finished")
        succeeded_before = stack.store.count_by_status()["succeeded"]
        keys = [stack.upload(client, p.read_bytes()) for p in small_faces[:jobs]]
        batch = client.post("/v1/batches", json={
            "items": [{"input_key": k} for k in keys], "edits": ["smile=+1"],
            "options": {"suppressor": "naive"},
        }).json()  # fmt: skip
        assert stack.wait_batch(client, batch["id"])["counts"]["succeeded"] == jobs

        seen: list[tuple[float, ...]] = []

        def settled() -> tuple[float, ...] | None:
            finished = stack.store.count_by_status()["succeeded"] - succeeded_before
            deltas = tuple(a - b for a, b in zip(worker_figures(), before, strict=True))
            seen[:] = [(finished, *deltas)]
            return deltas if deltas == (finished,) * 3 else None

        try:
            deltas = stack.wait_for(settled, what="the workers' counts to match the database")
        except AssertionError as exc:
            raise AssertionError(f"(succeeded in SQL, finished, job_seconds, stage fetch) "
                                 f"since the start: {seen}\n{exc}") from None
        assert deltas[0] >= jobs  # other tests' jobs may finish meanwhile, counted once too

        # Every replica reads the same state and observes no job itself.
        scraped = [scrape(url) for url in apis]
        counts = stack.store.count_by_status()
        for samples, types in scraped:
            assert "facedit_job_seconds" not in types and "facedit_stage_seconds" not in types
            assert total(samples, "facedit_jobs", status="succeeded") == counts["succeeded"]
            for queue in (stack.settings.queue, stack.settings.webhook_queue):
                assert ("facedit_queue_depth", frozenset({("queue", queue)})) in samples
            assert total(samples, "facedit_jobs_finished_total", status="succeeded") == 0

        # A cancellation is counted by the replica that made it, once.
        cancelled_before = [
            total(s, "facedit_jobs_finished_total", status="cancelled") for s, _ in scraped
        ]
        with stack.paused():
            other = client.post("/v1/jobs", json={"input_key": keys[0], "edits": ["age=+1"]})
            with httpx.Client(base_url=second_api, headers=client.headers) as replica:
                assert replica.post(f"/v1/jobs/{other.json()['id']}/cancel").status_code == 200
        cancelled = [
            total(scrape(url)[0], "facedit_jobs_finished_total", status="cancelled")
            for url in apis
        ]
        assert [a - b for a, b in zip(cancelled, cancelled_before, strict=True)] == [0, 1]
        assert summed(workers, "facedit_jobs_finished_total", status="cancelled") == 0


def test_sweep_counts_a_job_lost_with_its_workers_once(
    stack: Stack, small_faces: list[Path]
) -> None:
    workers = [w.metrics_url for w in stack.all_workers()]
    before = summed(workers, "facedit_jobs_finished_total", status="failed",
                    error_code="worker_lost")
    with stack.client() as client:
        key = stack.upload(client, small_faces[1].read_bytes())
    with stack.paused():
        batch = stack.store.create_batch(
            [NewJob(stack.storage.uri(key), [{"attribute": "smile", "strength": 1.0}],
                    max_attempts=1)], owner="alice",
        )  # fmt: skip
        assert stack.store.claim(batch.job_ids[0], "dead-host/1", lease_seconds=0.2)
        stack.wait_for(
            lambda: stack.job_row(batch.job_ids[0]).error_code == "worker_lost",
            what="the sweep to fail the job",
        )
    stack.wait_for(
        lambda: summed(workers, "facedit_jobs_finished_total", status="failed",
                       error_code="worker_lost") - before == 1,
        what="the sweep's count",
    )
