"""``facedit api``, ``worker``, ``submit`` and ``status``: the distributed runtime, and the
client ``submit`` and ``status`` talk to the API with.

These commands need the ``service`` extra (FastAPI, uvicorn, Celery, httpx), imported only
when one runs: without it, :func:`needs_service_extra` says in one line what to install.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import typer
from rich.progress import TextColumn
from rich.table import Table

from facedit.cli.options import (
    ACTIVATION_OPTION,
    ALIGN_OPTION,
    ALL_FACES_OPTION,
    DETECTOR_OPTION,
    EDIT_OPTION,
    FORMAT_OPTION,
    INTERMEDIATES_OPTION,
    LATENTS_OPTION,
    MODELS_HELP,
    OUTPUT_SIZE_OPTION,
    QUALITY_OPTION,
    SUPPRESSOR_OPTION,
    checked_pipeline_options,
    job_options,
    parse_edits,
)
from facedit.console import cell, console, fail, say, warn
from facedit.embedded import IMAGE_SUFFIXES, collect_inputs
from facedit.jobs_log import LogRow, append_rows
from facedit.outputs import OutputNamer, write_new
from facedit.progress import counter
from shared.core.config import get_settings

# Modules of the `service` extra (pyproject.toml); a command that needs one says so.
SERVICE_MODULES = {"fastapi", "uvicorn", "celery", "kombu", "redis", "psycopg", "httpx",
                   "prometheus_client", "starlette", "limits"}
API_OPTION = typer.Option(None, "--api", help="API base URL (default: FACEDIT_API_URL)")
KEY_OPTION = typer.Option(None, "--key", help="API key (default: FACEDIT_API_KEY)")
UPLOAD_THREADS = 8
RATE_LIMIT_PATIENCE_S = 300.0  # how long a call waits out the API key's rate limit in all
WEBHOOK_CONCURRENCY = 8  # threads of a webhook worker: deliveries wait on the network


def needs_service_extra(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a missing service dependency into one line naming the extra to install."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ModuleNotFoundError as exc:
            root = (exc.name or "").split(".")[0]
            if root not in SERVICE_MODULES:
                raise
            fail(f"`facedit {command.__name__}` needs the service extra, which is not "
                 f"installed (no module {root!r}): pip install 'facedit[service]'")

    return wrapper


# ---------------------------------------------------------------- servers


@needs_service_extra
def api(
    host: str = typer.Option("127.0.0.1", "--host", help="interface to listen on"),
    port: int = typer.Option(8000, "--port", help="TCP port"),
    workers: int = typer.Option(1, "--workers", min=1, help="uvicorn worker processes"),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log"),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Serve the HTTP API (FastAPI + uvicorn; OpenAPI docs at /docs)."""
    import uvicorn

    if workers > 1:  # the processes share their counters, so /metrics answers for all
        _metrics_dir("facedit-api-metrics-")
    uvicorn.run(
        "api.app:create_app", factory=True, host=host, port=port, workers=workers,
        access_log=access_log, log_level=log_level, proxy_headers=True,
    )  # fmt: skip


@needs_service_extra
def worker(
    concurrency: int = typer.Option(
        None, "--concurrency", "-c", min=1,
        help="pool processes, one GPU each (default: the devices in CUDA_VISIBLE_DEVICES, "
             f"or 1; with --webhooks: {WEBHOOK_CONCURRENCY} threads)",
    ),
    models: str = typer.Option(
        None, "--models", help=MODELS_HELP + ", or null (no models: resize only)"
    ),
    webhooks: bool = typer.Option(
        False, "--webhooks",
        help="deliver webhooks only: consume FACEDIT_WEBHOOK_QUEUE, load no models, no GPU",
    ),
    name: str = typer.Option(None, "--name", "-n",
                             help="Celery node name (default: celery@%h, webhooks@%h)"),
    loglevel: str = typer.Option("info", "--loglevel", "-l"),
    pool: str = typer.Option(None, "--pool", "-P",
                             help="prefork | solo | threads (default: prefork; threads "
                                  "with --webhooks)"),
    metrics_port: int = typer.Option(
        None, "--metrics-port", min=0, max=65535,
        help="Prometheus /metrics port of this worker (default: FACEDIT_WORKER_METRICS_PORT; "
             "0: none)",
    ),
) -> None:
    """Run a Celery worker: a GPU worker on the job queue (models loaded once per process),
    or with --webhooks a light worker that only delivers webhooks."""
    if models:
        os.environ["FACEDIT_MODELS"] = models
    if metrics_port is not None:
        os.environ["FACEDIT_WORKER_METRICS_PORT"] = str(metrics_port)
    os.environ["FACEDIT_WORKER_ROLE"] = "webhooks" if webhooks else "jobs"
    get_settings.cache_clear()
    # Before any metric exists: the pool processes count into files the main process sums.
    _metrics_dir("facedit-worker-metrics-")
    from workers.celery_app import celery_app

    settings = get_settings()
    if webhooks:
        queue, pool = settings.webhook_queue, pool or "threads"
        processes = concurrency or WEBHOOK_CONCURRENCY
        name = name or "webhooks@%h"
    else:
        queue, pool = settings.queue, pool or "prefork"
        processes = concurrency or _default_concurrency()
        name = name or "celery@%h"
        # Each pool process gets its share of the cores for torch's CPU work (read at
        # import, after the fork); oversubscribed thread pools are much slower.
        os.environ.setdefault("OMP_NUM_THREADS",
                              str(max(1, (os.cpu_count() or 1) // processes)))
    argv = [
        "worker", "--queues", queue, "--concurrency", str(processes), "--pool", pool,
        "--loglevel", loglevel, "--hostname", name, "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    celery_app.worker_main(argv)


def _metrics_dir(prefix: str) -> None:
    """prometheus_client's multiprocess folder for this process and its children; a
    folder made here is removed when this process exits."""
    import atexit

    from shared.core.telemetry import prepare_multiprocess_dir, remove_multiprocess_dir

    path, created = prepare_multiprocess_dir(prefix)
    if created:
        main = os.getpid()
        atexit.register(lambda: os.getpid() == main and remove_multiprocess_dir(path))


def _default_concurrency() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    devices = [d for d in visible.split(",") if d.strip()]
    return max(1, len(devices))


# ---------------------------------------------------------------- client


class ApiClient:
    """The few calls the CLI makes, with the API's errors turned into exits."""

    def __init__(self, base_url: str | None, key: str | None) -> None:
        import httpx

        settings = get_settings()
        key = key or settings.api_key
        if not key:
            fail("no API key: pass --key or set FACEDIT_API_KEY (`facedit keys create`)", 2)
        self.http = httpx.Client(
            base_url=(base_url or settings.api_url).rstrip("/"),
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        import httpx

        waited = 0.0
        while True:
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                fail(f"cannot reach the API at {self.http.base_url}: {exc}")
            # The key's rate limit (429 rate_limited): a refused request changed nothing, so
            # it is sent again once Retry-After has passed.
            if response.status_code != 429 or waited >= RATE_LIMIT_PATIENCE_S:
                break
            delay = _retry_after(response)
            time.sleep(delay)
            waited += delay
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                text = f"{error['code']}: {error['message']}"
            except (ValueError, KeyError, TypeError):
                text = response.text[:500]
            fail(f"{method} {path} → HTTP {response.status_code} {text}",
                 2 if response.status_code < 500 else 1)
        return response.json()

    def upload(self, path: Path) -> str:
        """POST the file with the S3 form /v1/uploads hands out (S3 enforces its size limit;
        a file over it is refused here first, before any byte is sent)."""
        import httpx

        target = self.call("POST", "/v1/uploads", json={"filename": path.name})
        size, limit = path.stat().st_size, target["max_bytes"]
        if not 0 < size <= limit:
            fail(f"{path} is {size} bytes: the service takes 1 to {limit} bytes per image "
                 "(FACEDIT_MAX_IMAGE_BYTES)", 2)
        with path.open("rb") as handle:
            response = httpx.post(
                target["upload_url"], data=target["fields"],
                files={"file": (path.name, handle, target["fields"].get("Content-Type"))},
                timeout=120,
            )  # fmt: skip
        if response.status_code >= 300:
            fail(f"uploading {path} failed: HTTP {response.status_code} "
                 f"{_s3_error(response.text)}")
        return target["key"]

    def jobs(self, batch_id: str) -> list[dict[str, Any]]:
        found, offset = [], 0
        while offset is not None:
            page = self.call("GET", f"/v1/batches/{batch_id}",
                             params={"offset": offset, "limit": 1000})
            found.extend(page["jobs"])
            offset = page["next_offset"]
        return found


def _retry_after(response: Any) -> float:
    """The seconds a 429's Retry-After asks for (1 to 60; 1 when it says nothing usable)."""
    try:
        return min(60.0, max(1.0, float(response.headers.get("Retry-After", "1"))))
    except ValueError:
        return 1.0


def _s3_error(body: str) -> str:
    """``Code: Message`` of an S3 XML error body (else the body's start)."""
    import re

    found = {tag: re.search(f"<{tag}>(.*?)</{tag}>", body, re.S) for tag in ("Code", "Message")}
    if found["Code"]:
        return ": ".join(m.group(1).strip() for m in found.values() if m)
    return body[:300]


# ---------------------------------------------------------------- submit, status


@needs_service_extra
def submit(
    directory: Path = typer.Argument(..., help="folder of images (or one image file)"),
    edit: list[str] = EDIT_OPTION,
    api_url: str = API_OPTION,
    key: str = KEY_OPTION,
    wait: bool = typer.Option(False, "--wait", help="follow progress and download results"),
    out: Path = typer.Option(None, "--out", "-o", help="where --wait puts results, jobs.jsonl "
                                                       "and index.html"),
    suppressor: str = SUPPRESSOR_OPTION,
    activation: str = ACTIVATION_OPTION,
    output_size: int = OUTPUT_SIZE_OPTION,
    intermediates: bool = INTERMEDIATES_OPTION,
    save_latents: bool = LATENTS_OPTION,
    output_format: str = FORMAT_OPTION,
    quality: int = QUALITY_OPTION,
    align: str = ALIGN_OPTION,
    all_faces: bool = ALL_FACES_OPTION,
    detector: str = DETECTOR_OPTION,
    callback_url: str = typer.Option(None, "--callback-url", help="webhook on completion"),
    idempotency_key: str = typer.Option(None, "--idempotency-key"),
) -> None:
    """Upload a folder of images and submit them as one batch to a facedit API."""
    specs = parse_edits(edit)
    options = job_options(None, format=output_format, quality=quality, align=align,
                          all_faces=all_faces, detector=detector, save_latents=save_latents)
    paths = [p for p in collect_inputs([directory]) if p.suffix.lower() in IMAGE_SUFFIXES]
    missing = [p for p in paths if not p.is_file()]
    if not paths or missing:
        fail(f"no images found in {directory}" if not paths else f"{missing[0]}: no such file",
             2)
    client = ApiClient(api_url, key)
    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        keys = list(pool.map(client.upload, paths))
    body = {
        "items": [{"input_key": k, "name": p.name} for k, p in zip(keys, paths, strict=True)],
        "edits": [spec.to_dict() for spec in specs],
        # checked by the API (422 invalid_option), as any client's
        "options": checked_pipeline_options(suppressor, activation, output_size, intermediates),
        **options,
    }
    if callback_url:
        body["callback_url"] = callback_url
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    batch = client.call("POST", "/v1/batches", json=body, headers=headers)
    say(f"batch {batch['id']}: {batch['total']} job(s) queued")
    if not wait:
        say(f"follow it with: facedit status {batch['id']}")
        return
    _follow(client, batch["id"], batch["total"])
    jobs = client.jobs(batch["id"])
    target = out or Path("facedit-results") / batch["id"]
    failed, index = _download(jobs, target, dict(zip(keys, paths, strict=True)), batch["id"])
    say(f"{len(jobs) - failed} succeeded, {failed} not; results and jobs.jsonl in {target}")
    say(f"gallery: {index}")
    raise typer.Exit(0 if failed == 0 else 1)


@needs_service_extra
def status(
    batch_id: str = typer.Argument(..., help="the batch id `facedit submit` printed"),
    api_url: str = API_OPTION,
    key: str = KEY_OPTION,
    as_json: bool = typer.Option(False, "--json", help="print the API's JSON"),
) -> None:
    """Show a batch: counts per status and its jobs."""
    client = ApiClient(api_url, key)
    page = client.call("GET", f"/v1/batches/{batch_id}", params={"limit": 1000})
    if as_json:
        console.print_json(json.dumps(page))  # JSON, not markup
        return
    counts = ", ".join(f"{k} {v}" for k, v in page["counts"].items())
    table = Table(title=cell(f"batch {batch_id} ({'done' if page['done'] else 'in progress'})"),
                  caption=cell(counts))
    for column in ("#", "input", "status", "progress", "error"):
        table.add_column(column)
    for job in page["jobs"]:
        error = f"{job['error_code']}: {job['error_message']}" if job["error_code"] else ""
        table.add_row(cell(job["position"]), cell(job.get("input_name")), cell(job["status"]),
                      cell(f"{job['progress']:.0%}"), cell(error))
    console.print(table)


# ---------------------------------------------------------------- submit --wait


def _follow(client: ApiClient, batch_id: str, total: int) -> None:
    with counter(console, "editing", TextColumn("{task.fields[counts]}", markup=False)) \
            as progress:
        task = progress.add_task("batch", total=total, counts="")
        while True:
            page = client.call("GET", f"/v1/batches/{batch_id}", params={"limit": 1})
            counts = page["counts"]
            finished = counts["succeeded"] + counts["failed"] + counts["cancelled"]
            shown = " ".join(f"{k}={v}" for k, v in counts.items() if v)
            progress.update(task, completed=finished, counts=shown)
            if page["done"]:
                return
            time.sleep(0.5)


def _download(jobs: list[dict[str, Any]], target: Path, originals: dict[str, Path],
              batch_id: str) -> tuple[int, Path]:
    """Fetch every result (and intermediates, latent) into ``target`` under the inputs' names,
    log the jobs in jobs.jsonl and write the gallery; returns (jobs not succeeded, index)."""
    from facedit.gallery import write_gallery
    from facedit.gallery_rows import row_from_log

    target.mkdir(parents=True, exist_ok=True)
    namer = OutputNamer(target)
    rows, gallery, failed = [], [], 0
    for job in jobs:
        row = LogRow(
            input=job.get("input_name") or job["id"], job_id=job["id"], status=job["status"],
            error_code=job["error_code"], error=job["error_message"],
            output=(job.get("result") or {}).get("uri"), sha256=job.get("input_sha256"),
            suppressor=job.get("suppressor"),
        )  # fmt: skip
        if job["status"] == "succeeded":
            row.results, row.latent = _fetch_results(job, target, namer)
        else:
            failed += 1
        rows.append(row)
        original = _original(job, originals)
        gallery.append(row_from_log(row, target, original, row.status))
    append_rows(target, rows, truncate=True)
    index = write_gallery(target, gallery, title=f"facedit batch {batch_id}")
    return failed, index


def _original(job: dict[str, Any], originals: dict[str, Path]) -> Path | None:
    """The local file a job's input was uploaded from (matched by its storage key)."""
    for upload_key, path in originals.items():
        if job["input_uri"].endswith(upload_key):
            return path
    return None


def _fetch_results(job: dict[str, Any], target: Path, namer: OutputNamer
                   ) -> tuple[list[dict[str, Any]], str | None]:
    import httpx

    from shared.core.contracts import LATENT_SUFFIX

    planned: list[tuple[str, str | None]] = []  # (suffix, presigned URL)
    results = job.get("results") or [{"label": None, "result": job["result"],
                                      "intermediates": job.get("intermediates") or {}}]
    for result in results:
        label = result.get("label") or "result"
        planned.append((f".{label}.{_ext(result['result']['uri'])}", result["result"]["url"]))
        for name, stored in sorted(result["intermediates"].items()):
            planned.append((f".{label}.{name}.{_ext(stored['uri'])}", stored["url"]))
    if job.get("latent"):
        planned.append((LATENT_SUFFIX, job["latent"]["url"]))
    stem = namer.stem_for(Path(job.get("input_name") or job["id"]).stem, [s for s, _ in planned])
    for suffix, url in planned:
        if url is None:
            warn(f"job {job['id']}: no download URL for its {suffix} file")
            continue
        response = httpx.get(url, timeout=120)
        response.raise_for_status()
        write_new(target / (stem + suffix), response.content)
    files = iter(stem + s for s, _ in planned)
    logged = []
    for result in results:
        file = next(files)
        extras = {name: next(files) for name in sorted(result["intermediates"])}
        logged.append({"label": result.get("label"), "file": file, "intermediates": extras})
    return logged, (stem + LATENT_SUFFIX) if job.get("latent") else None


def _ext(uri: str) -> str:
    return uri.rsplit(".", 1)[-1]
