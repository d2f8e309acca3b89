"""A stack the fault tests can break and mend (issue #14's fault suite).

Services, one set for the whole package, owned by it and by nothing else
(tests/integration/faults/servers.py, tests/fixtures/services.py):

- Redis: a ``redis-server`` process on a fixed port. Broken with ``SHUTDOWN SAVE`` (an
  outage: it comes back with its data) or FLUSHALL (data loss); mended by starting it again.
- PostgreSQL: a cluster of its own from pgserver's binaries, on a fixed TCP port. Broken with
  ``pg_ctl stop -m fast`` or ``pg_terminate_backend`` on every connection to the stack's
  database; mended with ``pg_ctl start``.
- S3: SeaweedFS on fixed ports and data dir, stopped (SIGTERM, SIGKILL after 1 s) and started
  again where it was.

Per test module, a fresh deployment on those services: its own database, bucket and queue, the
API as a subprocess (``facedit api``) and N Celery workers (``facedit worker --concurrency 1``,
toy models on the CPU), with the module's settings (override the ``stack_config`` fixture).
Whatever a test breaks is mended when it ends, and again before the next module starts.

Helpers on :class:`FaultStack`: submit jobs on 256² aligned faces, wait until they are all
finished (or fail listing the stuck ones), read job rows, count the ``stored <key>`` lines of
the worker logs, wait for "mid-batch" (some jobs started, others still queued) and probe
endpoints while something is down.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.services import SeaweedFS, free_ports
from tests.integration.faults.servers import PostgresCluster, RedisServer

REPO = Path(__file__).resolve().parents[3]
CLI = [sys.executable, "-c", "import sys; from facedit.cli import app; sys.exit(app())"]
OWNER = "alice"
START_TIMEOUT_S = 120.0
TERMINAL = ("succeeded", "failed", "cancelled")
# What every fault stack runs with; a module's StackConfig adds to it or overrides it.
BASE_SETTINGS = {
    "FACEDIT_MODELS": "toy",
    "FACEDIT_DEVICE": "cpu",
    "FACEDIT_BATCH_SIZE": "4",
    "FACEDIT_LEASE_SECONDS": "3",
    "FACEDIT_SWEEP_INTERVAL_SECONDS": "0.5",
    "FACEDIT_TRANSIENT_RETRY_SECONDS": "0.5",
    # The fault tests poll and submit fast; the rate limits are tested in
    # tests/integration/service/test_rate_limits.py (with their Redis down: fail open).
    "FACEDIT_RATE_LIMIT_REQUESTS_PER_SECOND": "500",
}
# A normal job: one edit on an aligned 256² face (no face detection).
JOB = {"edits": ["smile=+2"], "align": "never"}
STORED = re.compile(r" stored (\S+)\s*$", re.MULTILINE)
JOB_OF_KEY = re.compile(r"(?:^|/)outputs/[^/]+/([^/]+)/")


@dataclass(frozen=True)
class StackConfig:
    """What a module's stack runs: worker count and FACEDIT_* settings over BASE_SETTINGS."""

    workers: int = 2
    settings: dict[str, str] = field(default_factory=dict)


# -- services -------------------------------------------------------------------------------


@dataclass
class FaultServices:
    redis: RedisServer
    postgres: PostgresCluster
    s3: SeaweedFS

    def mend(self) -> None:
        """Start whatever a test left stopped."""
        if not self.redis.running:
            self.redis.start()
        if not self.postgres.running:
            self.postgres.start()
        if not self.s3.running:
            self.s3.start()

    @contextlib.contextmanager
    def redis_down(self) -> Iterator[None]:
        self.redis.stop()
        try:
            yield
        finally:
            self.redis.start()

    @contextlib.contextmanager
    def postgres_down(self) -> Iterator[None]:
        self.postgres.stop()
        try:
            yield
        finally:
            self.postgres.start()

    @contextlib.contextmanager
    def s3_down(self) -> Iterator[None]:
        self.s3.stop()
        try:
            yield
        finally:
            self.s3.start()


@pytest.fixture(scope="package")
def fault_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultServices]:
    root = tmp_path_factory.mktemp("faults")
    for name in ("redis", "postgres", "s3"):
        (root / name).mkdir()
    with contextlib.ExitStack() as stack:
        redis = RedisServer(root / "redis")
        stack.callback(redis.close)
        redis.start()
        postgres = PostgresCluster(root / "postgres")
        stack.callback(postgres.close)
        postgres.init()
        postgres.start()
        s3 = SeaweedFS(root / "s3")
        stack.callback(shutil.rmtree, s3.data_dir, ignore_errors=True)  # after close; logs stay
        stack.callback(s3.close)
        s3.start()
        yield FaultServices(redis, postgres, s3)


# -- inputs ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def aligned_faces(faces_256: list[Path]) -> list[Path]:
    """Eight 256² development faces."""
    return faces_256[:8]


# -- the stack ------------------------------------------------------------------------------


@dataclass
class Process:
    name: str
    command: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str]) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM to its process group (a worker finishes its task), SIGKILL after
        ``grace_s``."""
        if not self.alive:
            return
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass(frozen=True)
class Answer:
    """One HTTP exchange made while something was down (or ``error``: no answer at all)."""

    method: str
    path: str
    status: int | None
    code: str | None
    retry_after: str | None
    seconds: float
    error: str | None = None
    body: str = ""

    def __str__(self) -> str:
        got = self.error or f"{self.status} {self.code or ''} Retry-After={self.retry_after}"
        return f"{self.method} {self.path} → {got} in {self.seconds:.1f} s {self.body[:300]}"


@dataclass(frozen=True)
class Finished:
    """The jobs' rows once all were finished — or, with ``error``, when the wait gave up."""

    rows: dict[str, dict]
    error: str | None

    def require(self) -> dict[str, dict]:
        """The rows; AssertionError (listing the jobs still open) if not all finished."""
        if self.error:
            raise AssertionError(self.error)
        return self.rows


class FaultStack:
    """One deployment (API + workers) on the fault services; see the module docstring."""

    def __init__(self, services: FaultServices, config: StackConfig, tmp: Path,
                 faces: list[Path]) -> None:
        self.services = services
        self.config = config
        self.tmp = tmp
        self.faces = faces
        self.started = time.monotonic()
        self.timeline: list[str] = []
        tag = uuid.uuid4().hex[:10]
        self.queue = f"faults-{tag}"
        self.database = f"faults_{tag}"
        self.database_url = services.postgres.create_database(self.database)
        self.bucket = services.s3.server.create_bucket()
        self.storage = services.s3.server.storage(self.bucket, "data")
        self.api_port = free_ports(1)[0]
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        s3 = services.s3.server
        settings = {
            **BASE_SETTINGS,
            "FACEDIT_DATA_DIR": str(tmp / "data"),
            "FACEDIT_DATABASE_URL": self.database_url,
            "FACEDIT_BROKER_URL": services.redis.url,
            "FACEDIT_STORAGE_URL": f"s3://{self.bucket}/data",
            "FACEDIT_S3_ENDPOINT_URL": s3.endpoint_url,
            "FACEDIT_S3_REGION": s3.region,
            "FACEDIT_QUEUE": self.queue,
            **config.settings,
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FACEDIT_", "AWS_"))}
        env.update(settings)
        env.update({
            "AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
        })  # fmt: skip
        self.env = env
        self.api = Process(
            "api",
            [*CLI, "api", "--port", str(self.api_port), "--no-access-log",
             "--log-level", "warning"],
            tmp / "api.log",
        )  # fmt: skip
        self.workers = [
            Process(
                f"w{i}",
                [*CLI, "worker", "--concurrency", "1", "--name", f"w{i}-{self.queue}@%h",
                 "--loglevel", "info"],
                tmp / f"worker{i}.log",
            )  # fmt: skip
            for i in range(1, config.workers + 1)
        ]
        self.key = ""
        self.inputs: list[str] = []

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        from shared.jobs import ApiKeys, JobStore

        store = JobStore(self.database_url)
        try:
            store.migrate()
            self.key = ApiKeys(store).create(OWNER, "fault tests")[1]
        finally:
            store.close()
        self.inputs = self.upload_faces()
        self.api.start(self.env)
        for worker in self.workers:
            worker.start(self.env)
        self.wait_ready()
        self.note(f"stack up ({len(self.workers)} workers)")

    def close(self) -> None:
        for process in (*self.workers, self.api):
            process.stop()

    def upload_faces(self) -> list[str]:
        from api.inputs import owner_tag

        keys = []
        for i, path in enumerate(self.faces):
            key = f"uploads/{owner_tag(OWNER)}/face-{i}{path.suffix.lower()}"
            self.storage.put(key, path.read_bytes())
            keys.append(key)
        return keys

    def upload(self, path: Path, name: str) -> str:
        """Store ``path`` as one of the owner's uploads; its key."""
        from api.inputs import owner_tag

        key = f"uploads/{owner_tag(OWNER)}/{name}"
        self.storage.put(key, path.read_bytes())
        return key

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """The API answers /readyz and /v1/attributes (a worker published its catalog), and
        every worker's consumer is ready."""
        deadline = time.monotonic() + timeout_s
        last = ""
        while True:
            for process in (self.api, *self.workers):
                if not process.alive:
                    raise RuntimeError(f"{process.name} exited while starting:\n"
                                       f"{process.log()[-6000:]}")
            try:
                with self.http(timeout=5) as client:
                    ready = client.get("/readyz")
                    last = f"/readyz {ready.status_code} {ready.text[:300]}"
                    if ready.status_code == 200 and (not self.workers or (
                        client.get("/v1/attributes").status_code == 200
                        and all(" ready." in w.log() for w in self.workers)
                    )):  # fmt: skip
                        return
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                raise RuntimeError(f"the fault stack did not become ready ({last}):\n"
                                   f"{self.logs(4000)}")
            time.sleep(0.25)

    # ------------------------------------------------------------ HTTP

    def http(self, timeout: float = 30.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        return httpx.Client(base_url=self.api_url, headers=headers, timeout=timeout)

    def call(self, method: str, path: str, timeout: float = 30.0, **kwargs: Any) -> Answer:
        """One request, whatever happens: an :class:`Answer` (``error`` if none came)."""
        started = time.monotonic()
        try:
            with self.http(timeout=timeout) as client:
                response = client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            return Answer(method, path, None, None, None, time.monotonic() - started,
                          error=f"{type(exc).__name__}: {exc}")
        code = None
        with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
            code = response.json()["error"]["code"]
        return Answer(method, path, response.status_code, code,
                      response.headers.get("Retry-After"), time.monotonic() - started,
                      body=response.text)

    def job_body(self, index: int = 0, **fields: Any) -> dict[str, Any]:
        return {"input_key": self.inputs[index % len(self.inputs)], **JOB, **fields}

    def batch_body(self, count: int, **fields: Any) -> dict[str, Any]:
        items = [{"input_key": self.inputs[i % len(self.inputs)]} for i in range(count)]
        return {"items": items, **JOB, **fields}

    def submit_batch(self, count: int, **fields: Any) -> list[str]:
        """POST /v1/batches with ``count`` jobs (202 expected); their ids, in order."""
        with self.http() as client:
            answer = client.post("/v1/batches", json=self.batch_body(count, **fields))
            assert answer.status_code == 202, answer.text
            batch_id = answer.json()["id"]
            page = client.get(f"/v1/batches/{batch_id}", params={"limit": 1000})
            assert page.status_code == 200, page.text
        ids = [job["id"] for job in page.json()["jobs"]]
        assert len(ids) == count, page.text
        self.note(f"submitted a batch of {count}")
        return ids

    def submit_job(self, body: dict[str, Any]) -> str:
        """POST /v1/jobs (202 expected); the job id."""
        with self.http() as client:
            answer = client.post("/v1/jobs", json=body)
        assert answer.status_code == 202, answer.text
        return answer.json()["id"]

    # ------------------------------------------------------------ job rows

    def rows(self, job_ids: Iterable[str], retry_for_s: float = 60.0) -> dict[str, dict]:
        """The jobs' rows, read straight from the database (every column, as a dict);
        retried while the database is unreachable."""
        import psycopg
        from psycopg.rows import dict_row

        ids = list(job_ids)
        deadline = time.monotonic() + retry_for_s
        while True:
            try:
                with psycopg.connect(self.database_url, connect_timeout=5,
                                     row_factory=dict_row) as connection:
                    found = connection.execute(
                        "SELECT * FROM jobs WHERE id = ANY(%s)", (ids,)
                    ).fetchall()
                return {row["id"]: row for row in found}
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def wait_terminal(self, job_ids: Iterable[str], timeout_s: float,
                      what: str = "jobs") -> dict[str, dict]:
        """Until every job is succeeded, failed or cancelled; their rows. On timeout: an
        AssertionError listing the jobs still open, and the logs."""
        ids = list(job_ids)
        deadline = time.monotonic() + timeout_s
        while True:
            rows = self.rows(ids)
            open_rows = [rows.get(i) or {"id": i, "status": "(no row)"} for i in ids
                         if i not in rows or rows[i]["status"] not in TERMINAL]
            if not open_rows:
                self.note(f"{what}: all {len(ids)} finished")
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(open_rows)} of {len(ids)} {what} still open after {timeout_s:.0f} s:\n"
                    + "\n".join(describe_row(r) for r in open_rows[:20])
                    + f"\n{self.report()}"
                )
            time.sleep(0.2)

    def finish(self, job_ids: Iterable[str], timeout_s: float, what: str = "jobs") -> Finished:
        """:meth:`wait_terminal` that keeps the failure for a test to report: a scenario runs
        once per module and several tests check what came of it."""
        ids = list(job_ids)
        try:
            return Finished(self.wait_terminal(ids, timeout_s, what), None)
        except AssertionError as exc:
            return Finished(self.rows(ids), str(exc))

    def wait_mid_batch(self, job_ids: list[str], min_queued: int | None = None,
                       timeout_s: float = 60.0) -> dict[str, dict]:
        """Until some of the jobs have started (running or finished) while at least
        ``min_queued`` (default: a quarter) are still queued: the moment to inject a fault."""
        min_queued = max(1, len(job_ids) // 4) if min_queued is None else min_queued
        deadline = time.monotonic() + timeout_s
        while True:
            rows = self.rows(job_ids)
            counts = collections.Counter(row["status"] for row in rows.values())
            started = counts["running"] + sum(counts[s] for s in TERMINAL)
            if started >= 1 and counts["queued"] >= min_queued:
                self.note(f"mid-batch: {dict(counts)}")
                return rows
            if counts["queued"] < min_queued and started > 0:
                raise AssertionError(
                    f"the batch ran ahead before a fault could be injected mid-batch "
                    f"({dict(counts)}): submit more jobs\n{self.report()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no job started within {timeout_s:.0f} s "
                                     f"({dict(counts)})\n{self.report()}")
            time.sleep(0.05)

    # ------------------------------------------------------------ worker logs

    def stored_keys(self) -> collections.Counter[str]:
        """How many times each storage key was written (``stored <key>`` in worker logs)."""
        counts: collections.Counter[str] = collections.Counter()
        for worker in self.workers:
            counts.update(STORED.findall(worker.log()))
        return counts

    def result_keys(self, row: dict) -> list[str]:
        """The storage keys of everything a succeeded job's row names: each result, its
        intermediates, its latent."""
        uris = []
        for output in row.get("outputs") or []:
            uris.append(output["uri"])
            uris.extend((output.get("intermediates") or {}).values())
        if not row.get("outputs") and row.get("output_uri"):
            uris.append(row["output_uri"])
        if row.get("latent_uri"):
            uris.append(row["latent_uri"])
        return [self.storage.key_from_uri(uri) for uri in uris]

    def assert_succeeded_once(self, rows: dict[str, dict]) -> None:
        """Every job succeeded, none is left running, and each of their result objects
        was written exactly once (no other object was written for them)."""
        not_ok = [r for r in rows.values() if r["status"] != "succeeded"]
        assert not not_ok, (
            f"{len(not_ok)} of {len(rows)} jobs did not succeed:\n"
            + "\n".join(describe_row(r) for r in not_ok[:20]) + f"\n{self.report()}"
        )
        stored = self.stored_keys()
        by_job: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        for key, count in stored.items():
            match = JOB_OF_KEY.search(key)
            if match:
                by_job[match.group(1)][key] += count
        problems = []
        for job_id, row in rows.items():
            expected = self.result_keys(row)
            if not expected:
                problems.append(f"job {job_id}: succeeded with no result")
                continue
            written = by_job.get(job_id, collections.Counter())
            wanted = collections.Counter({key: 1 for key in expected})
            if written != wanted:
                problems.append(f"job {job_id}: expected each of {sorted(expected)} written "
                                f"once; the worker logs say {dict(written)}")
        assert not problems, (
            f"{len(problems)} job(s) with results not written exactly once "
            f"(`stored <key>` lines of the worker logs):\n" + "\n".join(problems[:20])
            + f"\n{self.report()}"
        )

    # ------------------------------------------------------------ reporting

    def note(self, event: str) -> None:
        """Record an event on the test's timeline (printed, and shown with failures)."""
        line = f"{time.monotonic() - self.started:7.1f} s  {event}"
        self.timeline.append(line)
        print(line, flush=True)

    def logs(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {p.name} ({p.log_path})\n{p.log()[-chars:]}"
                         for p in (self.api, *self.workers))

    def report(self) -> str:
        return "timeline:\n" + "\n".join(self.timeline) + "\n" + self.logs()


def summarize(answers: Iterable[Answer]) -> str:
    """``GET /v1/jobs/… 200 ×5, POST /v1/jobs 503 storage_unavailable ×4``: what came back."""
    counts = collections.Counter(
        f"{a.method} {re.sub(r'[0-9a-f]{32}', '…', a.path)} "
        + (a.error.split(":")[0] if a.error else f"{a.status} {a.code or ''}".strip())
        for a in answers
    )
    return ", ".join(f"{what} ×{n}" for what, n in sorted(counts.items()))


def describe_row(row: dict) -> str:
    keys = ("status", "attempts", "max_attempts", "retries", "not_before", "error_code",
            "error_message", "worker_id", "lease_expires_at")
    fields = ", ".join(f"{k}={row[k]!r}" for k in keys if k in row)
    return f"  {row.get('id')}: {fields}"


@pytest.fixture(scope="module")
def stack_config() -> StackConfig:
    """The module's stack settings; a module overrides this fixture to change them."""
    return StackConfig()


@pytest.fixture(scope="module")
def stack(
    fault_services: FaultServices,
    stack_config: StackConfig,
    aligned_faces: list[Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FaultStack]:
    fault_services.mend()
    deployment = FaultStack(fault_services, stack_config, tmp_path_factory.mktemp("stack"),
                            aligned_faces)
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.close()
        fault_services.mend()


@pytest.fixture(autouse=True)
def _mend_after_each_test(fault_services: FaultServices) -> Iterator[None]:
    """A test that failed half-way through a fault leaves nothing broken for the next."""
    yield
    fault_services.mend()
