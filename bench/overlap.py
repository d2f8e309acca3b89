"""Throughput of the workers around an accelerator (issue #16), through the real stack: the
API (`facedit api`), Celery workers (`facedit worker --concurrency 1`), PostgreSQL, Redis
and SeaweedFS, with the null pipeline holding each batch FACEDIT_NULL_HOLD_MS per image in
`time.sleep` (it releases the GIL, as waiting on a GPU kernel does) as the model stage.
Inputs are 1024² JPEGs (the development faces, quality 90), results 1024² images.

- **device-busy**: one worker, each job `smile=+1` at output size 1024 — the fraction of the
  wall time (first job started → last job finished) the stand-in is busy, i.e.
  jobs × hold / span, and jobs/s; before (FACEDIT_WORKER_DRAIN_SECONDS=0: each task runs one
  batch, step after step) and after (the default: the next batch is fetched and decoded, the
  last one encoded and stored, while the current one is held), for PNG and JPEG results;
- **scaling**: 1, 2, 4 and 8 workers, overlapped, PNG results: jobs/s, and the CPU time per job
  of each component (API, workers, PostgreSQL, Redis, SeaweedFS), read from /proc before and
  after each run.

    .venv/bin/python -m bench.overlap                    # prints the tables
    .venv/bin/python -m bench.overlap --write-results    # also updates bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.results import RESULTS, write_section
from bench.stack import FACES, Stack, service_env, services, stack_for
from shared.jobs import ApiKeys, JobStore

HOLD_MS = 20.0
BATCH_SIZE = 8
ITEMS_PER_REQUEST = 16
CLK_TCK = os.sysconf("SC_CLK_TCK")
COMPONENTS = ("api", "workers", "postgres", "redis", "seaweedfs")


@dataclass
class Row:
    table: str
    mode: str
    fmt: str
    workers: int
    jobs: int
    span_s: float
    failed: int
    cpu_ms: dict[str, float] = field(default_factory=dict)  # per job, per component

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.span_s

    @property
    def busy(self) -> float:
        """Fraction of the span each worker's stand-in accelerator is holding a batch."""
        return self.jobs * HOLD_MS / 1000 / (self.span_s * self.workers)


# -- inputs -------------------------------------------------------------------------------------


def upload_jpegs(storage: Any, owner: str, count: int) -> list[str]:
    """``count`` 1024² development faces, stored as JPEG (quality 90) for ``owner``."""
    from PIL import Image

    from api.inputs import owner_tag

    keys = []
    for path in sorted(FACES.glob("*")):
        with Image.open(path) as image:
            if image.size != (1024, 1024):
                continue
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, "JPEG", quality=90)
        key = f"uploads/{owner_tag(owner)}/overlap-{len(keys)}.jpg"
        storage.put(key, buffer.getvalue(), content_type="image/jpeg")
        keys.append(key)
        if len(keys) == count:
            return keys
    raise RuntimeError(f"{len(keys)} 1024² faces in {FACES}; {count} needed")


def submit(url: str, key: str, inputs: list[str], jobs: int, fmt: str) -> list[str]:
    body = {"edits": ["smile=+1"], "align": "never", "format": fmt,
            "options": {"suppressor": "naive", "output_size": 1024}}
    chunks = [[inputs[(i + j) % len(inputs)] for j in range(min(ITEMS_PER_REQUEST, jobs - i))]
              for i in range(0, jobs, ITEMS_PER_REQUEST)]

    def send(chunk: list[str]) -> str:
        answer = httpx.post(f"{url}/v1/batches", headers={"Authorization": f"Bearer {key}"},
                            json={"items": [{"input_key": k} for k in chunk], **body}, timeout=60)
        answer.raise_for_status()
        return answer.json()["id"]

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(send, chunks))


def wait_done(store: JobStore, batch_ids: list[str], timeout_s: float = 1800) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    while sum(store.count_by_status(batch_ids, statuses=["queued", "running"]).values()):
        if time.monotonic() > deadline:
            raise RuntimeError("jobs still open")
        time.sleep(0.2)
    jobs: list[Any] = []
    for batch_id in batch_ids:
        jobs += store.list_jobs(batch_id, offset=0, limit=1000)
    return jobs


# -- CPU time per component ---------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, float] | None:
    """(command name, CPU seconds of the process and its waited-for children)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return name, ticks / CLK_TCK


def _session(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3])
    except (OSError, IndexError, ValueError):
        return None


def cpu_by_component(stack: Stack) -> dict[str, float]:
    """CPU seconds so far of the API's and workers' process sessions and of every postgres,
    redis-server and weed process on the machine."""
    sessions = {stack.api.pid: "api", **{w.pid: "workers" for w in stack.workers}}
    found = dict.fromkeys(COMPONENTS, 0.0)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        stat = _stat(pid)
        if stat is None:
            continue
        name, seconds = stat
        component = sessions.get(_session(pid) or -1)
        if component is None:
            component = {"postgres": "postgres", "redis-server": "redis",
                         "weed": "seaweedfs"}.get(name)
        if component is not None:
            found[component] += seconds
    return found


# -- runs ---------------------------------------------------------------------------------------


def run_once(env: dict[str, str], tmp: Path, store: JobStore, key: str, inputs: list[str],
             table: str, mode: str, fmt: str, workers: int, jobs: int) -> Row:
    drain = {"sequential": "0", "overlapped": "30"}[mode]
    run_env = {**env, "FACEDIT_NULL_HOLD_MS": str(HOLD_MS),
               "FACEDIT_WORKER_DRAIN_SECONDS": drain}
    with stack_for(run_env, "null", BATCH_SIZE, workers, tmp) as stack:
        wait_done(store, submit(stack.url, key, inputs, BATCH_SIZE * workers, fmt))  # warm-up
        before = cpu_by_component(stack)
        rows = wait_done(store, submit(stack.url, key, inputs, jobs, fmt))
        after = cpu_by_component(stack)
    started = min(r.started_at for r in rows if r.started_at)
    span = (max(r.finished_at for r in rows) - started).total_seconds()
    cpu = {c: 1000 * (after[c] - before[c]) / jobs for c in COMPONENTS}
    row = Row(table, mode, fmt, workers, jobs, span,
              sum(r.status != "succeeded" for r in rows), cpu)
    print(f"{table}: {mode} {fmt} x{workers}: {row.jobs_per_s:.1f} jobs/s, busy "
          f"{row.busy:.0%}, cpu ms/job {', '.join(f'{c} {v:.0f}' for c, v in cpu.items())}",
          flush=True)
    return row


def busy_table(rows: list[Row]) -> str:
    lines = ["| results | worker | jobs | jobs/s | stand-in busy | worker CPU ms/job | failed |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.fmt.upper()} | {r.mode} | {r.jobs} | {r.jobs_per_s:.1f} | "
                     f"{r.busy:.0%} | {r.cpu_ms['workers']:.0f} | {r.failed} |")
    return "\n".join(lines)


def scaling_table(rows: list[Row]) -> str:
    head = " | ".join(f"{c} CPU ms/job" for c in COMPONENTS)
    lines = [f"| workers | jobs | jobs/s | stand-in busy (per worker) | {head} | failed |",
             "|---:|---:|---:|---:|" + "---:|" * len(COMPONENTS) + "---:|"]
    for r in rows:
        cells = " | ".join(f"{r.cpu_ms[c]:.1f}" for c in COMPONENTS)
        lines.append(f"| {r.workers} | {r.jobs} | {r.jobs_per_s:.1f} | {r.busy:.0%} | {cells} | "
                     f"{r.failed} |")
    return "\n".join(lines)


def feeding_capacity(rows: list[Row]) -> str:
    """How many accelerators one API + PostgreSQL + Redis set could feed, from the CPU ms per
    job they spent in the run with the most workers (S3 is a service of its own in a
    deployment; SeaweedFS's share is given apart)."""
    r = max(rows, key=lambda row: row.workers)
    shared_ms = sum(r.cpu_ms[c] for c in ("api", "postgres", "redis"))
    per_core = 1000 / shared_ms
    return (f"At {r.workers} workers the API, PostgreSQL and Redis together spent "
            f"{shared_ms:.1f} CPU ms per job (API {r.cpu_ms['api']:.1f}, PostgreSQL "
            f"{r.cpu_ms['postgres']:.1f}, Redis {r.cpu_ms['redis']:.1f}): one core of them "
            f"takes about {per_core:.0f} jobs/s, {per_core / 50:.1f} accelerators at 50 edits/s "
            f"each, so a 4-core API/PostgreSQL/Redis set feeds about {4 * per_core / 50:.0f}. "
            f"SeaweedFS spent {r.cpu_ms['seaweedfs']:.1f} ms per job (a managed S3 takes that "
            f"off the machine), and the workers {r.cpu_ms['workers']:.0f} ms per job each "
            f"(decode, encode, the S3 and SQL clients): those cores sit beside each "
            f"accelerator, about {r.cpu_ms['workers'] / 20:.0f} per accelerator at "
            f"{HOLD_MS:.0f} ms per image.")


def write_results(busy: list[Row], scaling: list[Row]) -> None:
    machine = f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, no GPU"
    section = f"""## Overlap and scaling

`python -m bench.overlap`: the real stack (API, Celery workers, PostgreSQL, Redis, SeaweedFS)
on one machine ({machine}), all sharing its cores. The model stage is the null pipeline
holding each batch {HOLD_MS:.0f} ms per image in `time.sleep` (`FACEDIT_NULL_HOLD_MS`; it
releases the GIL like a wait on a GPU). 1024² JPEG inputs (quality 90), 1024² results,
batches of {BATCH_SIZE}. *Sequential* is `FACEDIT_WORKER_DRAIN_SECONDS=0`: a task runs one
batch, each step after the other, as before issue #16; *overlapped* is the default: a task
keeps claiming while jobs are queued, the next batch is claimed, fetched and decoded while
the current one is held, and the previous one encoded, stored and recorded by two threads.
"Stand-in busy" is jobs × {HOLD_MS:.0f} ms / (first start → last finish) per worker.

### Device-busy fraction (one worker)

{busy_table(busy)}

### Horizontal scaling (overlapped, PNG results)

{scaling_table(scaling)}

{feeding_capacity(scaling)}
"""
    write_section(section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=160, help="jobs per device-busy run")
    parser.add_argument("--scaling-jobs", type=int, default=160, help="jobs per scaling run")
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="facedit-overlap-") as tmp_name, \
            services(Path(tmp_name)) as svc:
        tmp = Path(tmp_name)
        bucket = svc["s3"].create_bucket()
        store = JobStore(svc["database_url"])
        store.migrate()
        _, key = ApiKeys(store).create("bench")
        inputs = upload_jpegs(svc["s3"].storage(bucket, "data"), "bench", 32)
        env = service_env(svc, bucket, key, tmp)
        busy = [run_once(env, tmp, store, key, inputs, "busy", mode, fmt, 1, args.jobs)
                for fmt in ("png", "jpg") for mode in ("sequential", "overlapped")]
        scaling = [] if args.skip_scaling else [
            run_once(env, tmp, store, key, inputs, "scaling", "overlapped", "png", n,
                     args.scaling_jobs)
            for n in (int(w) for w in args.workers.split(","))
        ]
        store.close()
    print(busy_table(busy))
    if scaling:
        print(scaling_table(scaling))
        print(feeding_capacity(scaling))
    if args.write_results and scaling:
        write_results(busy, scaling)
        print(f"updated {RESULTS}")


if __name__ == "__main__":
    main()
