"""Queue benchmark: the real distributed stack, end to end, on this machine.

Starts PostgreSQL, Redis and SeaweedFS (the test fixtures' servers: local ones if they
answer, else throwaway ones), the API as a uvicorn subprocess (`facedit api`) and two
Celery worker subprocesses (`facedit worker`), then for each model set (the null pipeline
and the `toy` preset) and each micro-batch size (FACEDIT_BATCH_SIZE 1 and 8):

- burst: submits N jobs at once (POST /v1/batches, ITEMS_PER_REQUEST images a request,
  from 4 client threads) on 256² inputs uploaded beforehand, and waits for all of them;
  jobs/s = N / (last finish - first submission);
- paced: submits jobs one by one (POST /v1/jobs) at half the burst rate and reports the
  p50/p95 submit-to-done latency (row created_at → finished_at) and the orchestration
  overhead per job: latency minus the model stages (the time in the pipeline proper, as the
  workers record it per job; fetch, decode and store count as orchestration).

    .venv/bin/python bench/service.py                 # prints the table
    .venv/bin/python bench/service.py --write-results # also updates "## Queue" in RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.results import RESULTS, write_section
from bench.stack import service_env, services, stack_for, upload_inputs
from shared.jobs import ApiKeys, JobStore

ITEMS_PER_REQUEST = 16
# The inputs are aligned crops already: no face detection (align=never), so what is timed
# is the job system and the models, not dlib.
JOB = {"edits": ["smile=+2"], "options": {"suppressor": "naive"}, "align": "never"}
CLIENT_THREADS = 4
NON_MODEL_STAGES = {"fetch", "decode", "store"}


@dataclass
class Row:
    models: str
    batch_size: int
    jobs: int
    jobs_per_s: float
    p50_s: float
    p95_s: float
    overhead_ms: float
    model_ms: float
    failed: int


# -- load -----------------------------------------------------------------------------------


def _body(keys: list[str]) -> dict[str, Any]:
    return {"items": [{"input_key": k} for k in keys], **JOB}


def burst(url: str, key: str, inputs: list[str], jobs: int) -> list[str]:
    """Submit ``jobs`` jobs as fast as the API takes them; their batch ids."""
    chunks = [[inputs[(i + j) % len(inputs)] for j in range(min(ITEMS_PER_REQUEST, jobs - i))]
              for i in range(0, jobs, ITEMS_PER_REQUEST)]
    headers = {"Authorization": f"Bearer {key}"}

    def send(chunk: list[str]) -> str:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            answer = client.post("/v1/batches", json=_body(chunk))
            answer.raise_for_status()
            return answer.json()["id"]

    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        return list(pool.map(send, chunks))


def paced(url: str, key: str, inputs: list[str], jobs: int, rate: float) -> list[str]:
    """Submit single jobs open-loop at ``rate`` per second; their batch ids."""
    headers = {"Authorization": f"Bearer {key}"}
    ids: list[str] = []
    lock = threading.Lock()
    start = time.monotonic()

    def send(i: int) -> None:
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        body = {"input_key": inputs[i % len(inputs)], **JOB}
        answer = httpx.post(f"{url}/v1/jobs", json=body, headers=headers, timeout=60)
        answer.raise_for_status()
        with lock:
            ids.append(answer.json()["batch_id"])

    with ThreadPoolExecutor(CLIENT_THREADS * 2) as pool:
        list(pool.map(send, range(jobs)))
    return ids


def wait_done(store: JobStore, batch_ids: list[str], timeout_s: float = 900) -> list[Any]:
    """The jobs of ``batch_ids`` once none is queued or running."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = store.count_by_status(batch_ids, statuses=["queued", "running"])
        open_jobs = sum(counts.values())
        if open_jobs == 0:
            return [job for batch_id in batch_ids for job in _all_jobs(store, batch_id)]
        if time.monotonic() > deadline:
            raise RuntimeError(f"{open_jobs} jobs still open after {timeout_s} s")
        time.sleep(0.2)


def _all_jobs(store: JobStore, batch_id: str) -> list[Any]:
    jobs: list[Any] = []
    while page := store.list_jobs(batch_id, offset=len(jobs), limit=1000):
        jobs += page
    return jobs


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 \
        else values[0]


def measure(store: JobStore, url: str, key: str, inputs: list[str], models: str,
            batch_size: int, jobs: int) -> Row:
    wait_done(store, burst(url, key, inputs, 2 * batch_size * 2))  # warm-up
    rows = wait_done(store, burst(url, key, inputs, jobs))
    span = (max(r.finished_at for r in rows) - min(r.created_at for r in rows)).total_seconds()
    rate = jobs / span
    paced_jobs = max(20, jobs // 3)
    timed = wait_done(store, paced(url, key, inputs, paced_jobs, rate / 2))
    done = [r for r in timed if r.status == "succeeded"]
    latency = [(r.finished_at - r.created_at).total_seconds() for r in done]
    model = [sum(v for k, v in r.metrics["stages"].items() if k not in NON_MODEL_STAGES)
             for r in done]
    overhead = [lat - m for lat, m in zip(latency, model, strict=True)]
    failed = sum(r.status != "succeeded" for r in [*rows, *timed])
    return Row(models, batch_size, jobs, rate, _percentile(latency, 50),
               _percentile(latency, 95), 1000 * statistics.median(overhead),
               1000 * statistics.median(model), failed)


# -- report ---------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    lines = [
        "| models | batch size | jobs | jobs/s | p50 latency (s) | p95 latency (s) | "
        "overhead/job (ms) | model stages/job (ms) | failed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r.models} | {r.batch_size} | {r.jobs} | {r.jobs_per_s:.1f} | "
                     f"{r.p50_s:.3f} | {r.p95_s:.3f} | {r.overhead_ms:.0f} | {r.model_ms:.0f} | "
                     f"{r.failed} |")
    return "\n".join(lines)


def write_results(rows: list[Row], workers: int) -> None:
    machine = f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, no GPU"
    section = f"""## Queue

`bench/service.py`: the whole distributed stack on one machine, all sharing its cores: the
API as a uvicorn subprocess, {workers} Celery workers (`facedit worker --concurrency 1`),
Redis, PostgreSQL and SeaweedFS. Machine: {machine}. 256² PNG inputs (aligned faces)
uploaded beforehand; each job is one `smile=+2` edit with `suppressor=naive`,
`align=never`, PNG output.

- **jobs/s**: a burst of N jobs submitted as fast as the API takes them ({ITEMS_PER_REQUEST}
  images per `POST /v1/batches`, {CLIENT_THREADS} client threads), N / (last finish − first
  submission).
- **latency**: single jobs (`POST /v1/jobs`) submitted open-loop at half the burst rate;
  submit-to-done is the job row's `finished_at − created_at`.
- **overhead/job**: that latency minus the model stages (pipeline time as the worker
  records it in the job's metrics); everything else — queueing, the Celery message,
  claiming, S3 fetch and store, decode/encode, state updates — is orchestration.
- **batch size**: `FACEDIT_BATCH_SIZE`, the jobs one task claims and runs as one batch.

{table(rows)}

With the null pipeline a worker's CPU time per job is mostly the PNG encode of the result
(`shared.editing.imaging.encode_image`, zlib level 6: about 29 ms for a 256² image here,
against 8 ms at level 1), then boto3's S3 GET and PUT and the job-state updates; a batch size of 8
spreads each task's fixed costs (message, claim, completion check) over 8 jobs. On this
shared machine the figures vary by about ±20 % from run to run.
"""
    write_section(section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="null,toy")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--jobs", type=int, default=600, help="burst size for the null models")
    parser.add_argument("--toy-jobs", type=int, default=160, help="burst size for toy")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="facedit-bench-") as tmp_name, \
            services(Path(tmp_name)) as svc:
        tmp = Path(tmp_name)
        s3 = svc["s3"]
        bucket = s3.create_bucket()
        store = JobStore(svc["database_url"])
        store.migrate()
        _, key = ApiKeys(store).create("bench")
        storage = s3.storage(bucket, "data")
        inputs = upload_inputs(storage, "bench", 32)
        env = service_env(svc, bucket, key, tmp)
        for models in args.models.split(","):
            for batch_size in (int(b) for b in args.batch_sizes.split(",")):
                jobs = args.jobs if models == "null" else args.toy_jobs
                with stack_for(env, models, batch_size, args.workers, tmp) as stack:
                    row = measure(store, stack.url, key, inputs, models, batch_size, jobs)
                print(table([row]).splitlines()[-1], flush=True)
                rows.append(row)
        store.close()
    print(table(rows))
    if args.write_results:
        write_results(rows, args.workers)
        print(f"updated the Queue section of {RESULTS}")


if __name__ == "__main__":
    main()
