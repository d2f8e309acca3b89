"""Load and soak: the whole distributed stack under a burst, then under a steady rate.

The stack is bench/stack.py's: PostgreSQL, Redis and SeaweedFS (the test fixtures'
servers), the API as a uvicorn subprocess and ``--workers`` Celery workers
(``facedit worker --concurrency 1``, FACEDIT_MODELS=toy, FACEDIT_DEVICE=cpu), all on this
machine. Inputs: a few real 256² aligned faces from ../shared/data/faces/dev, read where
they are and uploaded once per owner. Every job is one ``smile=+2`` edit, ``align=never``
(no face detection), ``--suppressor`` (naive, as bench/service.py), PNG output. A short
warm-up (not counted) runs first.

1. **burst**: ``--jobs`` jobs in ``--bursts`` bursts ``--burst-gap`` s apart; a burst is
   POST /v1/batches of 16-50 items and some POST /v1/jobs singles (10 % of the jobs), sent
   from 4 client threads as fast as the API answers, without waiting for the workers;
   then wait until every job is terminal.
2. **soak**: single POST /v1/jobs, open loop at ``--rate`` jobs/s (default: 70 % of the
   burst's jobs/s while busy) for ``--soak-seconds``, from a pool of client threads (a
   submission never waits for a completion or an earlier answer); then drain.

Each phase has its own API key (owner), so the database tells its jobs apart. Per phase:

- **accepted**: jobs in 2xx answers; **refused**: requests (jobs) answered 4xx/5xx, by
  status; **no answer**: requests that raised (timeout, connection error);
- **succeeded**, **failed** (by error_code), **cancelled**: the job rows at the end;
- **lost**: accepted job ids the database does not have, or that are still queued/running
  after the drain (``--drain-timeout`` s after the last submission; longer than a lease, so
  the sweep could requeue a job of a dead worker). Must be 0. **unreported**: jobs of the
  phase's owner that no answer returned (a request that timed out but created its batch);
- **duplicates**: job ids returned twice, plus result objects written more than once as far
  as S3 can tell (a job with more than one object under outputs/<batch>/<job>/, or an object
  last modified more than 2 s after its job finished); **re-runs**: jobs with attempts > 1;
  **transient retries**: jobs postponed at least once by a transient failure (retries > 0);
- **latency**: the job row's created_at → finished_at (p50/p95/p99, succeeded jobs); the
  POST's own time, client side (p50/p99);
- **jobs/s**: terminal jobs / (last finished_at − first created_at), and the same over the
  time some job was open (the union of the jobs' created → finished: idle gaps between
  bursts left out);
- **max queued**: the most queued jobs seen by the sampler (every ``--sample-seconds``);
- **RSS**: resident set of the API process tree and of each worker's tree (main process +
  pool children; shared pages count once per process), at the start and end of the phase,
  and its course over the soak.

    .venv/bin/python -m bench.load                              # 2,000 jobs + 600 s soak
    .venv/bin/python -m bench.load --jobs 100 --soak-seconds 30 # a dry run
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy import Engine, func, select

from bench.stack import Stack, service_env, services, stack_for, upload_inputs
from shared.jobs import ApiKeys, JobStore
from shared.jobs.tables import Job

CLIENT_THREADS = 4
SOAK_THREADS = 16
BATCH_SIZES = (16, 50)
SINGLE_SHARE = 0.1
INPUTS = 8
MIB = 1024 * 1024
OPEN = ("queued", "running")
jobs_table = Job.__table__


# -- submitting -----------------------------------------------------------------------------


@dataclass
class Request:
    """One POST as the client saw it."""

    items: int
    scheduled: float  # time.time() it was due
    sent: float = 0.0
    seconds: float = 0.0
    status: int | None = None  # None: no answer
    error: str | None = None
    job_ids: list[str] = field(default_factory=list)


class Client:
    """POSTs jobs and batches; one keep-alive httpx client per thread."""

    def __init__(self, url: str, key: str, job: dict[str, Any]) -> None:
        self.url, self.job = url, job
        self.headers = {"Authorization": f"Bearer {key}"}
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()

    def _http(self) -> httpx.Client:
        http = getattr(self._local, "http", None)
        if http is None:
            http = httpx.Client(base_url=self.url, headers=self.headers, timeout=60)
            self._local.http = http
            with self._lock:
                self._clients.append(http)
        return http

    def submit(self, inputs: list[str], scheduled: float | None = None) -> Request:
        """POST /v1/jobs for one input, POST /v1/batches for more."""
        request = Request(len(inputs), scheduled or time.time())
        request.sent = time.time()
        start = time.perf_counter()
        try:
            answer = self._post(inputs)
        except httpx.HTTPError as exc:
            request.error = type(exc).__name__
        else:
            request.status = answer.status_code
            if answer.is_success:
                request.job_ids = _job_ids(answer.json(), len(inputs))
        request.seconds = time.perf_counter() - start
        return request

    def _post(self, inputs: list[str]) -> httpx.Response:
        if len(inputs) == 1:
            return self._http().post("/v1/jobs", json={"input_key": inputs[0], **self.job})
        body = {"items": [{"input_key": key} for key in inputs], **self.job}
        return self._http().post("/v1/batches", json=body)

    def close(self) -> None:
        for http in self._clients:
            http.close()


def _job_ids(answer: dict[str, Any], items: int) -> list[str]:
    if "jobs" not in answer:  # a job
        return [answer["id"]]
    ids = [job["id"] for job in answer["jobs"]]
    if answer["total"] != items or len(ids) != items:
        raise RuntimeError(f"batch {answer['id']}: {items} items sent, total "
                           f"{answer['total']}, {len(ids)} jobs on the first page")
    return ids


def burst_plan(jobs: int, rng: random.Random) -> list[int]:
    """Request sizes: 10 % of the jobs as singles, the rest in batches of 16-50, shuffled."""
    singles = round(jobs * SINGLE_SHARE)
    sizes = [1] * singles
    left = jobs - singles
    while left > 0:
        size = min(left, rng.randint(*BATCH_SIZES))
        sizes.append(size)
        left -= size
    rng.shuffle(sizes)
    return sizes


def split_bursts(sizes: list[int], bursts: int) -> list[list[int]]:
    """``sizes`` cut into ``bursts`` runs of about equal job counts."""
    total, runs, run, done = sum(sizes), [], [], 0
    for size in sizes:
        run.append(size)
        done += size
        if done >= total * (len(runs) + 1) / bursts:
            runs.append(run)
            run = []
    return runs + ([run] if run else [])


def pick(inputs: list[str], start: int, count: int) -> list[str]:
    return [inputs[(start + i) % len(inputs)] for i in range(count)]


def run_bursts(client: Client, inputs: list[str], sizes: list[int], bursts: int,
               gap_s: float) -> list[Request]:
    """Each burst as fast as the API answers, from CLIENT_THREADS threads."""
    requests: list[Request] = []
    offset = 0
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        for index, burst in enumerate(split_bursts(sizes, bursts)):
            if index:
                time.sleep(gap_s)
            starts = [offset + sum(burst[:i]) for i in range(len(burst))]
            offset += sum(burst)
            requests += pool.map(lambda s, n: client.submit(pick(inputs, s, n)), starts, burst)
    return requests


def run_soak(client: Client, inputs: list[str], rate: float, seconds: float) -> list[Request]:
    """Single jobs due at ``start + i / rate``, open loop (a thread pool sends them)."""
    count = max(1, round(rate * seconds))
    start = time.time()
    with ThreadPoolExecutor(SOAK_THREADS) as pool:
        futures = []
        for i in range(count):
            due = start + i / rate
            time.sleep(max(0.0, due - time.time()))
            futures.append(pool.submit(client.submit, pick(inputs, i, 1), due))
        return [future.result() for future in futures]


# -- observing ------------------------------------------------------------------------------


@dataclass
class Memory:
    """RSS in bytes: the API's process tree and each worker's (main + pool children)."""

    api: int
    workers: list[int]


def tree_rss(pid: int) -> int:
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def memory(stack: Stack) -> Memory:
    return Memory(tree_rss(stack.api.pid), [tree_rss(w.pid) for w in stack.workers])


@dataclass
class Sample:
    at: float  # seconds since the sampler started
    memory: Memory
    queued: int


class Sampler(threading.Thread):
    """RSS and the queued job count every ``interval`` s until stopped."""

    def __init__(self, stack: Stack, engine: Engine, interval: float) -> None:
        super().__init__(name="load-sampler", daemon=True)
        self.stack, self.engine, self.interval = stack, engine, interval
        self.samples: list[Sample] = []
        self.stopped = threading.Event()
        self.start_time = time.monotonic()

    def run(self) -> None:
        while True:
            self.samples.append(Sample(time.monotonic() - self.start_time, memory(self.stack),
                                       queued_jobs(self.engine)))
            if self.stopped.wait(self.interval):
                return

    def stop(self) -> list[Sample]:
        self.stopped.set()
        self.join()
        return self.samples


def queued_jobs(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(
            select(func.count()).select_from(jobs_table).where(jobs_table.c.status == "queued")
        ) or 0


def open_jobs(engine: Engine, owner: str) -> int:
    with engine.connect() as connection:
        return connection.scalar(
            select(func.count()).select_from(jobs_table)
            .where(jobs_table.c.owner == owner, jobs_table.c.status.in_(OPEN))
        ) or 0


def wait_terminal(engine: Engine, owner: str, timeout_s: float) -> float:
    """Until no job of ``owner`` is queued or running, or ``timeout_s``; seconds waited."""
    start = time.monotonic()
    while open_jobs(engine, owner) and time.monotonic() - start < timeout_s:
        time.sleep(1.0)
    return time.monotonic() - start


@dataclass(frozen=True)
class Row:
    """The columns of a job row the report needs."""

    id: str
    batch_id: str
    status: str
    error_code: str | None
    attempts: int
    created_at: datetime
    finished_at: datetime | None
    retries: int = 0  # transient postponements (a column since migration 0004)


def owner_rows(engine: Engine, owner: str) -> dict[str, Row]:
    columns = [jobs_table.c[name] for name in Row.__dataclass_fields__ if name in jobs_table.c]
    with engine.connect() as connection:
        result = connection.execute(select(*columns).where(jobs_table.c.owner == owner))
        return {row.id: Row(**row._mapping) for row in result}


def output_objects(s3_client: Any, bucket: str, batch_ids: set[str]) -> dict[str, list[Any]]:
    """Last-modified times of the objects under data/outputs/<batch>/<job>/, by job id."""
    found: dict[str, list[Any]] = {}
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix="data/outputs/"):
        for obj in page.get("Contents", []):
            _, _, batch_id, job_id, _ = obj["Key"].split("/", 4)
            if batch_id in batch_ids:
                found.setdefault(job_id, []).append(obj["LastModified"])
    return found


# -- one phase ------------------------------------------------------------------------------


@dataclass
class Phase:
    """What one phase sent, what the database and S3 hold at its end, and the memory."""

    name: str
    offered: str
    requests: list[Request]
    rows: dict[str, Row]
    outputs: dict[str, list[Any]]
    memory_start: Memory
    memory_end: Memory
    samples: list[Sample]
    wall_s: float


def run_phase(name: str, offered: str, send: Callable[[], list[Request]], stack: Stack,
              owner: str, ctx: dict[str, Any], args: argparse.Namespace) -> Phase:
    """Send, drain, then read back every job of ``owner`` and its stored objects."""
    engine: Engine = ctx["engine"]
    sampler = Sampler(stack, engine, args.sample_seconds)
    start = time.monotonic()
    memory_start = memory(stack)
    sampler.start()
    requests = send()
    print(f"{name}: {len(requests)} requests sent in {time.monotonic() - start:.0f} s; "
          "draining", flush=True)
    wait_terminal(engine, owner, args.drain_timeout)
    samples = sampler.stop()
    memory_end = memory(stack)
    rows = owner_rows(engine, owner)
    outputs = output_objects(ctx["s3_client"], ctx["bucket"], {r.batch_id for r in rows.values()})
    return Phase(name, offered, requests, rows, outputs, memory_start, memory_end, samples,
                 time.monotonic() - start)


# -- figures --------------------------------------------------------------------------------


def percentile(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def accepted_ids(phase: Phase) -> list[str]:
    return [job_id for r in phase.requests for job_id in r.job_ids]


def lost(phase: Phase) -> int:
    """Accepted ids missing from the database or not terminal after the drain."""
    return sum(job_id not in phase.rows or phase.rows[job_id].status in OPEN
               for job_id in set(accepted_ids(phase)))


def rewritten(phase: Phase) -> int:
    """Jobs with more than one stored object, or one written 2 s or more after finishing."""
    count = 0
    for job_id, times in phase.outputs.items():
        row = phase.rows.get(job_id)
        late = row is not None and row.finished_at is not None and any(
            t > row.finished_at + timedelta(seconds=2) for t in times)
        count += len(times) > 1 or late
    return count


def refused(requests: Iterable[Request]) -> str:
    by_status: Counter[int] = Counter()
    jobs: Counter[int] = Counter()
    for r in requests:
        if r.status is not None and not 200 <= r.status < 300:
            by_status[r.status] += 1
            jobs[r.status] += r.items
    return ", ".join(f"{s}: {by_status[s]} ({jobs[s]} jobs)" for s in sorted(by_status)) or "0"


def counted(counter: Counter[str]) -> str:
    total = sum(counter.values())
    detail = ", ".join(f"{k}: {v}" for k, v in counter.most_common())
    return f"{total} ({detail})" if total else "0"


def jobs_per_s(rows: Iterable[Row]) -> float:
    done = [r for r in rows if r.finished_at is not None]
    if not done:
        return 0.0
    span = max(r.finished_at for r in done) - min(r.created_at for r in done)
    return len(done) / max(span.total_seconds(), 1e-9)


def busy_jobs_per_s(rows: Iterable[Row]) -> float:
    """Terminal jobs / the time some job was open (the union of created → finished), so
    that gaps with nothing to do (between bursts) do not count."""
    spans = sorted((r.created_at, r.finished_at) for r in rows if r.finished_at is not None)
    busy, end = 0.0, None
    for start, finish in spans:
        if end is None or start > end:
            busy += (finish - start).total_seconds()
            end = finish
        elif finish > end:
            busy += (finish - end).total_seconds()
            end = finish
    return len(spans) / max(busy, 1e-9) if spans else 0.0


def mib(value: int) -> str:
    return f"{value / MIB:.0f}"


def figures(phase: Phase) -> dict[str, str]:
    """The phase's column of the table, by row label."""
    rows = list(phase.rows.values())
    ids = accepted_ids(phase)
    latency = [(r.finished_at - r.created_at).total_seconds()
               for r in rows if r.status == "succeeded" and r.finished_at is not None]
    post_ms = [1000 * r.seconds for r in phase.requests if r.status is not None]
    failures = Counter(r.error_code or "?" for r in rows if r.status == "failed")
    no_answer = Counter(r.error or "?" for r in phase.requests if r.status is None)
    batches = sum(r.items > 1 for r in phase.requests)
    figs = {
        "offered": phase.offered,
        "requests (batches + singles)":
            f"{len(phase.requests)} ({batches} + {len(phase.requests) - batches})",
        "accepted jobs (2xx)": str(len(ids)),
        "refused requests, by status (jobs)": refused(phase.requests),
        "requests with no answer": counted(no_answer),
        "succeeded": str(sum(r.status == "succeeded" for r in rows)),
        "failed (by error_code)": counted(failures),
        "cancelled": str(sum(r.status == "cancelled" for r in rows)),
        "**lost**": f"**{lost(phase)}**",
        "unreported (in the database, never answered)": str(len(set(phase.rows) - set(ids))),
        "duplicates (ids answered twice + results written twice)":
            f"{len(ids) - len(set(ids))} + {rewritten(phase)}",
        "re-runs (attempts > 1) / transient retries (retries > 0)":
            f"{sum(r.attempts > 1 for r in rows)} / {sum(r.retries > 0 for r in rows)}",
        "latency p50 / p95 / p99 (s)": " / ".join(f"{percentile(latency, q):.2f}"
                                                 for q in (50, 95, 99)),
        "POST time p50 / p99 (ms)": " / ".join(f"{percentile(post_ms, q):.0f}" for q in (50, 99)),
        "jobs/s (first created → last finished)": f"{jobs_per_s(rows):.1f}",
        "jobs/s while busy (some job open)": f"{busy_jobs_per_s(rows):.1f}",
        "max queued jobs (sampled)": str(max((s.queued for s in phase.samples), default=0)),
        "wall time, drain included (s)": f"{phase.wall_s:.0f}",
        "API RSS start → end (MiB)": f"{mib(phase.memory_start.api)} → "
                                     f"{mib(phase.memory_end.api)}",
    }
    for i, (start, end) in enumerate(zip(phase.memory_start.workers, phase.memory_end.workers,
                                         strict=True)):
        figs[f"worker {i} RSS start → end (MiB)"] = f"{mib(start)} → {mib(end)}"
    return figs


def table(phases: list[Phase]) -> str:
    columns = [figures(p) for p in phases]
    lines = ["| | " + " | ".join(p.name for p in phases) + " |",
             "|---|" + "---:|" * len(phases)]
    for label in columns[0]:
        lines.append(f"| {label} | " + " | ".join(c.get(label, "") for c in columns) + " |")
    return "\n".join(lines)


def slope_mib_per_min(samples: list[Sample], value: Callable[[Sample], int]) -> float:
    """Least-squares slope of ``value`` over the second half of ``samples``, MiB/min."""
    half = samples[len(samples) // 2:]
    if len(half) < 2:
        return float("nan")
    xs = [s.at / 60 for s in half]
    ys = [value(s) / MIB for s in half]
    return statistics.linear_regression(xs, ys).slope


def rss_course(phase: Phase, points: int = 6) -> str:
    """RSS (MiB) of each process tree at ``points`` evenly spaced samples of the phase, and
    its slope over the phase's second half."""
    samples = phase.samples
    if not samples:
        return ""
    picked = [samples[round(i * (len(samples) - 1) / (points - 1))] for i in range(points)]
    series: list[tuple[str, Callable[[Sample], int]]] = [("API", lambda s: s.memory.api)]
    series += [(f"worker {i}", lambda s, i=i: s.memory.workers[i])
               for i in range(len(samples[0].memory.workers))]
    lines = ["| RSS (MiB) at | " + " | ".join(f"{s.at / 60:.1f} min" for s in picked)
             + " | 2nd-half slope (MiB/min) |", "|---|" + "---:|" * (len(picked) + 1)]
    for label, value in series:
        lines.append(f"| {label} | " + " | ".join(mib(value(s)) for s in picked)
                     + f" | {slope_mib_per_min(samples, value):+.2f} |")
    lines.append("| queued jobs | " + " | ".join(str(s.queued) for s in picked) + " | |")
    return "\n".join(lines)


def write_samples(phases: list[Phase], path: Path) -> None:
    """Every sample as CSV: phase, seconds, queued jobs, API and worker RSS in MiB."""
    workers = len(phases[0].memory_start.workers)
    lines = ["phase,seconds,queued,api_mib," + ",".join(f"worker{i}_mib" for i in range(workers))]
    for phase in phases:
        for s in phase.samples:
            rss = [s.memory.api, *s.memory.workers]
            lines.append(f"{phase.name},{s.at:.1f},{s.queued}," + ",".join(mib(v) for v in rss))
    path.write_text("\n".join(lines) + "\n")


def machine() -> str:
    model = platform.processor() or platform.machine()
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gib = psutil.virtual_memory().total / 1024**3
    return (f"{model}, {os.cpu_count()} cores, {memory_gib:.0f} GiB, no GPU; "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


# -- main -----------------------------------------------------------------------------------


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000, help="jobs in the burst phase")
    parser.add_argument("--bursts", type=int, default=4)
    parser.add_argument("--burst-gap", type=float, default=5.0, help="seconds between bursts")
    parser.add_argument("--soak-seconds", type=float, default=600.0)
    parser.add_argument("--rate", type=float, default=None,
                        help="soak jobs/s (default: --rate-share of the burst's busy jobs/s)")
    parser.add_argument("--rate-share", type=float, default=0.7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8, help="FACEDIT_BATCH_SIZE")
    parser.add_argument("--models", default="toy")
    parser.add_argument("--suppressor", default="naive")
    parser.add_argument("--drain-timeout", type=float, default=900.0,
                        help="seconds to wait for open jobs after a phase's last submission")
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--logs", type=Path, default=None,
                        help="copy the API and worker logs here (default: a new temp dir)")
    return parser.parse_args()


def owner_client(ctx: dict[str, Any], stack: Stack, owner: str, job: dict[str, Any]
                 ) -> tuple[Client, list[str]]:
    """A client with a fresh API key for ``owner``, and ``owner``'s uploaded inputs."""
    _, key = ApiKeys(ctx["store"]).create(owner)
    inputs = upload_inputs(ctx["storage"], owner, INPUTS, synthetic=False)
    return Client(stack.url, key, job), inputs


def run(args: argparse.Namespace, ctx: dict[str, Any], stack: Stack) -> list[Phase]:
    job = {"edits": ["smile=+2"], "options": {"suppressor": args.suppressor}, "align": "never"}
    warmup, inputs = owner_client(ctx, stack, "load-warmup", job)
    run_bursts(warmup, inputs, [args.batch_size * len(stack.workers) * 2], 1, 0)
    wait_terminal(ctx["engine"], "load-warmup", args.drain_timeout)
    warmup.close()

    client, inputs = owner_client(ctx, stack, "load-burst", job)
    sizes = burst_plan(args.jobs, random.Random(args.seed))
    burst = run_phase("burst", f"{args.jobs} jobs in {args.bursts} bursts",
                      lambda: run_bursts(client, inputs, sizes, args.bursts, args.burst_gap),
                      stack, "load-burst", ctx, args)
    client.close()
    print(table([burst]), flush=True)

    rate = args.rate or args.rate_share * busy_jobs_per_s(burst.rows.values())
    client, inputs = owner_client(ctx, stack, "load-soak", job)
    soak = run_phase("soak", f"{rate:.1f} jobs/s × {args.soak_seconds:.0f} s",
                     lambda: run_soak(client, inputs, rate, args.soak_seconds),
                     stack, "load-soak", ctx, args)
    client.close()
    return [burst, soak]


def main() -> None:
    args = arguments()
    with tempfile.TemporaryDirectory(prefix="facedit-load-") as tmp_name, \
            services(Path(tmp_name)) as svc:
        tmp = Path(tmp_name)
        s3 = svc["s3"]
        bucket = s3.create_bucket()
        store = JobStore(svc["database_url"])
        store.migrate()
        _, key = ApiKeys(store).create("load")
        ctx = {"store": store, "engine": store.engine, "bucket": bucket,
               "storage": s3.storage(bucket, "data"), "s3_client": s3.client()}
        env = service_env(svc, bucket, key, tmp)
        try:
            with stack_for(env, args.models, args.batch_size, args.workers, tmp) as stack:
                phases = run(args, ctx, stack)
        finally:
            logs = args.logs or Path(tempfile.mkdtemp(prefix="facedit-load-logs-"))
            logs.mkdir(parents=True, exist_ok=True)
            for log in tmp.glob("*.log"):
                shutil.copy(log, logs / log.name)
            print(f"logs: {logs}")
            store.close()
    write_samples(phases, logs / "samples.csv")
    print(f"\nMachine: {machine()}. {args.workers} workers × --concurrency 1, "
          f"FACEDIT_MODELS={args.models}, FACEDIT_BATCH_SIZE={args.batch_size}, "
          f"suppressor={args.suppressor}.\n")
    print(table(phases))
    print("\nOver the soak:\n")
    print(rss_course(phases[-1]))


if __name__ == "__main__":
    main()
