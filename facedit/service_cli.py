"""CLI commands for the distributed runtime (api, worker, submit, status, keys, db)."""

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
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from facedit.console import cell, console, fail, say, warn
from facedit.options import pipeline_options

keys_app = typer.Typer(help="Manage API keys (stored hashed in the job database).",
                       no_args_is_help=True, rich_markup_mode=None)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True, rich_markup_mode=None)

# Modules of the `service` extra (pyproject.toml); a command that needs one says so.
SERVICE_MODULES = {"fastapi", "uvicorn", "celery", "kombu", "redis", "psycopg", "httpx",
                   "prometheus_client", "starlette"}


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

API_HELP = "API base URL (default: FACEDIT_API_URL)"
EDIT_HELP = "ATTRIBUTE=STRENGTH[@START-END] or a sweep ATTRIBUTE=START:END:STEPS; repeatable"
SUPPRESSOR_HELP = "auto (default) | maresunet | poisson | poisson-opencv | naive | sdea"
KEY_HELP = "API key (default: FACEDIT_API_KEY)"
UPLOAD_THREADS = 8


def _fail(message: str, code: int = 1) -> None:
    fail(message, code)


def _settings() -> Any:
    from shared.core.config import get_settings

    return get_settings()


# -- servers --------------------------------------------------------------------------------


def api(
    host: str = typer.Option("127.0.0.1", "--host", help="interface to listen on"),
    port: int = typer.Option(8000, "--port", help="TCP port"),
    workers: int = typer.Option(1, "--workers", min=1, help="uvicorn worker processes"),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log"),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Serve the HTTP API (FastAPI + uvicorn; OpenAPI docs at /docs)."""
    import uvicorn

    uvicorn.run(
        "api.app:create_app", factory=True, host=host, port=port, workers=workers,
        access_log=access_log, log_level=log_level, proxy_headers=True,
    )  # fmt: skip


def _default_concurrency() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    devices = [d for d in visible.split(",") if d.strip()]
    return max(1, len(devices))


def worker(
    concurrency: int = typer.Option(
        None, "--concurrency", "-c", min=1,
        help="pool processes, one GPU each (default: the devices in CUDA_VISIBLE_DEVICES, or 1)",
    ),
    models: str = typer.Option(
        None, "--models", help="toy, auto, a weights folder, or null (no models: resize only)"
    ),
    name: str = typer.Option("celery@%h", "--name", "-n", help="Celery node name"),
    loglevel: str = typer.Option("info", "--loglevel", "-l"),
    pool: str = typer.Option("prefork", "--pool", "-P", help="prefork | solo | threads"),
) -> None:
    """Run a Celery GPU worker on the facedit queue (models loaded once per process)."""
    if models:
        os.environ["FACEDIT_MODELS"] = models
    from shared.core.config import get_settings

    get_settings.cache_clear()
    from workers.celery_app import celery_app

    settings = get_settings()
    processes = concurrency or _default_concurrency()
    # Each pool process gets its share of the cores for torch's CPU work (read at import,
    # after the fork); oversubscribed thread pools are much slower than one thread each.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    argv = [
        "worker", "--queues", settings.queue, "--concurrency", str(processes), "--pool", pool,
        "--loglevel", loglevel, "--hostname", name, "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    celery_app.worker_main(argv)


# -- client ---------------------------------------------------------------------------------


class ApiClient:
    """The few calls the CLI makes, with the API's errors turned into exits."""

    def __init__(self, base_url: str | None, key: str | None) -> None:
        import httpx

        settings = _settings()
        key = key or settings.api_key
        if not key:
            _fail("no API key: pass --key or set FACEDIT_API_KEY (`facedit keys create`)", 2)
        self.http = httpx.Client(
            base_url=(base_url or settings.api_url).rstrip("/"),
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        import httpx

        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            _fail(f"cannot reach the API at {self.http.base_url}: {exc}")
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                text = f"{error['code']}: {error['message']}"
            except (ValueError, KeyError, TypeError):
                text = response.text[:500]
            _fail(f"{method} {path} → HTTP {response.status_code} {text}",
                  2 if response.status_code < 500 else 1)
        return response.json()

    def upload(self, path: Path) -> str:
        import httpx

        target = self.call("POST", "/v1/uploads", json={"filename": path.name})
        response = httpx.put(target["upload_url"], content=path.read_bytes(), timeout=120)
        if response.status_code >= 300:
            _fail(f"uploading {path} failed: HTTP {response.status_code} {response.text[:300]}")
        return target["key"]

    def jobs(self, batch_id: str) -> list[dict[str, Any]]:
        found, offset = [], 0
        while offset is not None:
            page = self.call("GET", f"/v1/batches/{batch_id}",
                             params={"offset": offset, "limit": 1000})
            found.extend(page["jobs"])
            offset = page["next_offset"]
        return found


def submit(
    directory: Path = typer.Argument(..., help="folder of images (or one image file)"),
    edit: list[str] = typer.Option([], "--edit", "-e", help=EDIT_HELP),
    api_url: str = typer.Option(None, "--api", help=API_HELP),
    key: str = typer.Option(None, "--key", help=KEY_HELP),
    wait: bool = typer.Option(False, "--wait", help="follow progress and download results"),
    out: Path = typer.Option(None, "--out", "-o", help="where --wait puts results, jobs.jsonl "
                                                       "and index.html"),
    suppressor: str = typer.Option(None, "--suppressor", help=SUPPRESSOR_HELP),
    activation: str = typer.Option(None, "--activation", help="feature_diff | diffcam"),
    output_size: int = typer.Option(None, "--output-size", help="square output side"),
    intermediates: bool = typer.Option(False, "--save-intermediates"),
    save_latents: bool = typer.Option(False, "--save-latents", help="keep each input's W+ code"),
    output_format: str = typer.Option("png", "--format", help="png | jpg | webp"),
    quality: int = typer.Option(95, "--quality", min=1, max=100, help="JPEG/WebP quality"),
    align: str = typer.Option("auto", "--align", help="auto | always | never (face alignment)"),
    all_faces: bool = typer.Option(False, "--all-faces", help="with alignment: every face"),
    detector: str = typer.Option("hog", "--detector", help="hog | cnn (face detector)"),
    callback_url: str = typer.Option(None, "--callback-url", help="webhook on completion"),
    idempotency_key: str = typer.Option(None, "--idempotency-key"),
) -> None:
    """Upload a folder of images and submit them as one batch to a facedit API."""
    from facedit.embedded import IMAGE_SUFFIXES, collect_inputs
    from shared.core.contracts import JobOptions
    from shared.core.edits import check_request, parse_edit
    from shared.core.errors import InvalidEditRequest

    if not edit:
        _fail("at least one --edit ATTRIBUTE=STRENGTH is required", 2)
    try:
        specs = [parse_edit(text) for text in edit]
        check_request(specs)
        options = JobOptions.from_options({
            "format": output_format, "quality": quality, "align": align, "all_faces": all_faces,
            "detector": detector, "save_latents": save_latents,
        }).to_options()  # fmt: skip
    except InvalidEditRequest as exc:
        _fail(exc.message, 2)
    paths = [p for p in collect_inputs([directory]) if p.suffix.lower() in IMAGE_SUFFIXES]
    missing = [p for p in paths if not p.is_file()]
    if not paths or missing:
        _fail(f"no images found in {directory}" if not paths else f"{missing[0]}: no such file",
              2)
    client = ApiClient(api_url, key)
    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        keys = list(pool.map(client.upload, paths))
    body = {
        "items": [{"input_key": k, "name": p.name} for k, p in zip(keys, paths, strict=True)],
        "edits": [spec.to_dict() for spec in specs],
        "options": pipeline_options(suppressor, activation, output_size, intermediates),
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


def _follow(client: ApiClient, batch_id: str, total: int) -> None:
    with Progress(
        TextColumn("[bold]editing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[counts]}", markup=False), console=console,
    ) as progress:
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
    from facedit.jobs_log import LogRow, append_rows
    from facedit.outputs import OutputNamer

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


def _fetch_results(job: dict[str, Any], target: Path, namer: Any
                   ) -> tuple[list[dict[str, Any]], str | None]:
    import httpx

    from facedit.outputs import write_new
    from shared.editing.latents import LATENT_SUFFIX

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


def status(
    batch_id: str = typer.Argument(..., help="the batch id `facedit submit` printed"),
    api_url: str = typer.Option(None, "--api", help=API_HELP),
    key: str = typer.Option(None, "--key", help=KEY_HELP),
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


# -- keys and database ----------------------------------------------------------------------


def _store() -> Any:
    from shared.jobs import JobStore

    return JobStore(_settings().database_url)


@keys_app.command("create")
def keys_create(
    owner: str = typer.Argument(..., help="who the key belongs to; scopes all their jobs"),
    name: str = typer.Option(None, "--name", help="a label, e.g. the client's name"),
) -> None:
    """Create an API key. The key is printed once; only its hash is stored."""
    from shared.core.webhooks import owner_secret
    from shared.jobs import ApiKeys

    with _store() as store:
        try:
            record, key = ApiKeys(store).create(owner, name)
        except ValueError as exc:
            _fail(str(exc), 2)
    say(f"key id:  {record.id}\nowner:   {record.owner}\napi key: {key}")
    secret = _settings().webhook_secret
    if secret:
        say(f"webhook signing secret: {owner_secret(secret, owner)}")
    say("store the key now: it cannot be shown again", "yellow")


@keys_app.command("list")
def keys_list(
    owner: str = typer.Option(None, "--owner", help="only this owner's keys"),
    show_revoked: bool = typer.Option(True, "--revoked/--no-revoked"),
) -> None:
    """List API keys (ids and prefixes, never the keys)."""
    from shared.jobs import ApiKeys

    with _store() as store:
        records = ApiKeys(store).list(owner, include_revoked=show_revoked)
    table = Table(title="API keys")
    for column in ("id", "owner", "name", "created", "last used", "revoked"):
        table.add_column(column, no_wrap=column == "id", min_width=12 if column == "id" else None)
    for r in records:
        table.add_row(cell(r.id), cell(r.owner), cell(r.name),
                      cell(f"{r.created_at:%Y-%m-%d %H:%M}"),
                      cell(f"{r.last_used_at:%Y-%m-%d %H:%M}" if r.last_used_at else ""),
                      cell(f"{r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else ""))
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="the key id (or the key itself)")) -> None:
    """Revoke an API key; requests with it get 401 from then on."""
    from shared.jobs import ApiKeys

    with _store() as store:
        revoked = ApiKeys(store).revoke(key_id)
    if not revoked:
        _fail(f"no live key {key_id!r}", 1)
    say(f"revoked {key_id}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (safe to run repeatedly and concurrently)."""
    with _store() as store:
        revision = store.migrate()
    say(f"database at revision {revision}")


def register(app: typer.Typer) -> None:
    """Add the service commands to the top-level ``facedit`` app."""
    for command in (api, worker, submit, status):
        app.command()(needs_service_extra(command))
    app.add_typer(keys_app, name="keys")
    app.add_typer(db_app, name="db")
