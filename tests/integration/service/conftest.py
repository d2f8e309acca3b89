"""The real distributed stack, started once per test session: PostgreSQL, Redis and
SeaweedFS from tests/fixtures/services.py, the API (uvicorn serving ``create_app`` in a
thread of this process, reached over real HTTP), two Celery GPU workers as subprocesses
running the ``toy`` models on the CPU (``facedit worker``) and one webhook worker
(``facedit worker --webhooks``, no models), each serving its Prometheus metrics on a port.

Each session gets its own database, bucket and queue name, so it shares nothing with
other sessions on the same Redis.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from shared.core.config import Settings
from shared.core.storage import S3Storage
from shared.jobs import ApiKeys, JobRecord, JobStore
from tests.fixtures.services import PostgresServer, S3Server, free_ports
from workers.sweep import lock_key

REPO = Path(__file__).resolve().parents[3]
WORKER_START_TIMEOUT_S = 120.0
BATCH_SIZE = 4
MAX_BATCH_IMAGES = 12
MAX_BODY_BYTES = 64 * 1024
MAX_IMAGE_BYTES = 2 * 1024 * 1024
WEBHOOK_SECRET = "test-webhook-secret"


@dataclass
class Worker:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    metrics_port: int = 0

    @property
    def node(self) -> str:
        return f"{self.name}@{socket.gethostname()}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Stack:
    """Handles on every part of the running stack."""

    settings: Settings
    env: dict[str, str]
    store: JobStore
    storage: S3Storage
    redis: redis.Redis
    api_url: str
    workers: list[Worker]  # the GPU workers (job queue)
    webhook_worker: Worker | None = None  # the webhook queue's
    keys: dict[str, str] = field(default_factory=dict)  # owner → API key
    tmp: Path = Path()

    def client(self, owner: str | None = "alice", key: str | None = None) -> httpx.Client:
        headers = {}
        token = key or (self.keys[owner] if owner else None)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.api_url, headers=headers, timeout=60)

    def upload(self, client: httpx.Client, data: bytes, filename: str = "face.png") -> str:
        """Upload through the API: POST /v1/uploads, then POST the S3 form it returns."""
        target, answer = self.post_upload(client, data, filename)
        assert answer.status_code == 204, answer.text
        return target["key"]

    def post_upload(
        self, client: httpx.Client, data: bytes, filename: str = "face.png"
    ) -> tuple[dict[str, Any], httpx.Response]:
        """The /v1/uploads answer, and S3's answer to its form posted with ``data``."""
        target = client.post("/v1/uploads", json={"filename": filename})
        assert target.status_code == 201, target.text
        form = target.json()
        answer = httpx.post(form["upload_url"], data=form["fields"],
                            files={"file": (filename, data)}, timeout=60)
        return form, answer

    def wait_job(
        self, client: httpx.Client, job_id: str, timeout_s: float = 60.0
    ) -> dict[str, Any]:
        """Poll until the job is finished; its last answer."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {job['status']}:\n{self.worker_logs()}")
            time.sleep(0.05)

    def wait_batch(
        self, client: httpx.Client, batch_id: str, timeout_s: float = 90.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            batch = client.get(f"/v1/batches/{batch_id}", params={"limit": 1000}).json()
            if batch["done"]:
                return batch
            if time.monotonic() > deadline:
                raise AssertionError(f"batch {batch_id}: {batch['counts']}\n{self.worker_logs()}")
            time.sleep(0.05)

    def wait_for(
        self, condition: Callable[[], Any], timeout_s: float = 30.0, what: str = ""
    ) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.worker_logs()}")
            time.sleep(0.05)

    def job_row(self, job_id: str) -> JobRecord:
        job = self.store.get_job(job_id)
        assert job is not None
        return job

    def queue_length(self) -> int:
        return int(self.redis.llen(self.settings.queue))

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Workers stop taking messages from the queue inside the block (Celery remote
        control), so what is enqueued stays visible in Redis."""
        from workers.celery_app import make_celery

        app = make_celery(self.settings)
        nodes = [w.node for w in self.workers]
        try:
            replies = app.control.cancel_consumer(
                self.settings.queue, reply=True, timeout=5, destination=nodes
            )
            assert len(replies) == len(nodes), replies
            yield
        finally:
            replies = app.control.add_consumer(
                self.settings.queue, reply=True, timeout=5, destination=nodes
            )
            assert len(replies) == len(nodes), replies
            app.close()

    def all_workers(self) -> list[Worker]:
        return [*self.workers, *([self.webhook_worker] if self.webhook_worker else [])]

    def worker_logs(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {w.name}\n{w.log()[-chars:]}" for w in self.all_workers())


def _start_worker(name: str, env: dict[str, str], log_path: Path, *args: str,
                  metrics_port: int = 0) -> Worker:
    command = [
        sys.executable, "-c", "import sys; from facedit.cli import app; sys.exit(app())",
        "worker", "--concurrency", "1", "--name", f"{name}@%h", "--loglevel", "info",
        "--metrics-port", str(metrics_port), *args,
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    return Worker(name, process, log_path, metrics_port)


def _stop_worker(worker: Worker) -> None:
    if worker.process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.process.pid, signal.SIGTERM)
    try:
        worker.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait(timeout=10)


class ApiServer:
    """uvicorn serving the app on a free port, in a thread of this process."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_ports(1)[0]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: PostgresServer,
    redis_url: str,
    s3_server: S3Server,
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("service")
    database_url = postgres_server.create_database("facedit_service")
    bucket = s3_server.create_bucket()
    queue = f"facedit-test-{uuid.uuid4().hex[:8]}"
    settings_env = {
        "FACEDIT_DATA_DIR": str(tmp / "data"),
        "FACEDIT_DATABASE_URL": database_url,
        "FACEDIT_BROKER_URL": redis_url,
        "FACEDIT_STORAGE_URL": f"s3://{bucket}/data",
        "FACEDIT_S3_ENDPOINT_URL": s3_server.endpoint_url,
        "FACEDIT_S3_REGION": s3_server.region,
        "FACEDIT_QUEUE": queue,
        "FACEDIT_MODELS": "toy",
        "FACEDIT_DEVICE": "cpu",
        "FACEDIT_BATCH_SIZE": str(BATCH_SIZE),
        "FACEDIT_MAX_IMAGE_BYTES": str(MAX_IMAGE_BYTES),
        "FACEDIT_API_MAX_BATCH_IMAGES": str(MAX_BATCH_IMAGES),
        "FACEDIT_API_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        "FACEDIT_LEASE_SECONDS": "3",
        "FACEDIT_SWEEP_INTERVAL_SECONDS": "0.5",
        "FACEDIT_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "FACEDIT_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
        "FACEDIT_WEBHOOK_RETRY_SECONDS": "0.2",
        "FACEDIT_WEBHOOK_TIMEOUT_SECONDS": "5",
        # The tests poll as fast as they can; test_rate_limits.py runs APIs of its own with
        # low limits (the images per minute keep their default here).
        "FACEDIT_RATE_LIMIT_REQUESTS_PER_SECOND": "500",
    }
    aws = {"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACEDIT_", "AWS_"))}
    env.update(settings_env | aws | {"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"})
    settings = Settings(**{k.removeprefix("FACEDIT_").lower(): v for k, v in settings_env.items()})
    store = JobStore(database_url)
    store.migrate()
    saved_aws = {k: os.environ.get(k) for k in aws}
    os.environ.update(aws)  # the in-process API's boto3 client reads them
    client = redis.Redis.from_url(redis_url)
    workers: list[Worker] = []
    webhook_worker: Worker | None = None
    try:
        from api.app import create_app

        ports = free_ports(3)
        workers = [
            _start_worker(f"w{i}-{queue}", env, tmp / f"worker{i}.log", metrics_port=ports[i])
            for i in (1, 2)
        ]
        webhook_worker = _start_worker(f"hooks-{queue}", env, tmp / "webhooks.log",
                                       "--webhooks", metrics_port=ports[0])
        with ApiServer(create_app(settings)) as api_url:
            stack = Stack(
                settings=settings, env=env, store=store,
                storage=s3_server.storage(bucket, "data"), redis=client, api_url=api_url,
                workers=workers, webhook_worker=webhook_worker, tmp=tmp,
            )  # fmt: skip
            keys = ApiKeys(store)
            for owner in ("alice", "bob"):
                stack.keys[owner] = keys.create(owner, "tests")[1]
            _wait_for_workers(stack)
            yield stack
    finally:
        for worker in [*workers, *([webhook_worker] if webhook_worker else [])]:
            _stop_worker(worker)
        for name, value in saved_aws.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        for name in (queue, settings.webhook_queue):
            client.delete(name, f"_kombu.binding.{name}", f"_kombu.binding_permanent.{name}")
        client.delete(lock_key(queue))
        client.close()
        store.close()


def _wait_for_workers(stack: Stack) -> None:
    """Both GPU workers have loaded their models, and they and the webhook worker answer
    remote control and serve their metrics."""
    from workers.celery_app import make_celery

    deadline = time.monotonic() + WORKER_START_TIMEOUT_S
    app = make_celery(stack.settings)
    try:
        while True:
            for worker in stack.all_workers():
                if worker.process.poll() is not None:
                    raise RuntimeError(f"worker {worker.name} exited:\n{worker.log()[-6000:]}")
            ready = all(" ready." in w.log() for w in stack.all_workers())
            if ready and stack.store.read_catalog(stack.settings.queue) and all(
                "worker metrics on" in w.log() for w in stack.all_workers()
            ):
                nodes = [w.node for w in stack.all_workers()]
                replies = app.control.ping(timeout=1, destination=nodes)
                if len(replies) == len(nodes):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers did not start:\n{stack.worker_logs(6000)}")
            time.sleep(0.2)
    finally:
        app.close()


# -- inputs ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def small_faces(faces_256: list[Path]) -> list[Path]:
    """The 256² development faces (the toy pipeline works at 256²)."""
    return faces_256


def png_bytes(path: Path) -> bytes:
    return path.read_bytes()


def decode_png(data: bytes) -> Any:
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
