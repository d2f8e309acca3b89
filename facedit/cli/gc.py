"""``facedit gc``: remove expired uploads, results and job rows (shared/jobs/retention.py)
from the configured job database and storage, and say what went."""

from __future__ import annotations

import json
from datetime import datetime

import typer
from rich.table import Table

from facedit.cli.loaders import job_store
from facedit.console import cell, console, fail, say
from shared.core.config import get_settings
from shared.core.storage import storage_from_settings


def gc(
    dry_run: bool = typer.Option(False, "--dry-run", help="only report what would be removed"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Remove what has expired: uploads older than FACEDIT_RETAIN_UPLOADS_DAYS, the results
    of jobs finished more than FACEDIT_RETAIN_OUTPUTS_DAYS ago, and batches (with their jobs)
    finished more than FACEDIT_RETAIN_JOBS_DAYS ago (0 keeps that kind forever). Queued and
    running jobs, and the uploads they read, are never touched. Works on the database and
    storage the settings name: the embedded SQLite store or the service's."""
    from shared.jobs.retention import Retention, collect_garbage

    settings = get_settings()
    retention = Retention.from_settings(settings)
    with job_store() as store:
        if store.dialect == "sqlite":
            store.migrate()  # the embedded store, as `facedit run` opens it
        elif store.current_revision() != store.head_revision():
            fail(f"the job database is at revision {store.current_revision()}, this code "
                 f"needs {store.head_revision()}: run `facedit db upgrade` first")
        report = collect_garbage(store, storage_from_settings(settings), retention,
                                 dry_run=dry_run)
    if as_json:
        console.print_json(json.dumps(report.to_dict()))
        return
    cutoffs = retention.cutoffs(report.now)
    table = Table(title="facedit gc" + (" (dry run: nothing removed)" if dry_run else ""))
    table.add_column("what")
    table.add_column("would remove" if dry_run else "removed", justify="right")
    table.add_column("bytes", justify="right")
    table.add_column("expired before")
    rows = [
        ("uploads (objects)", report.uploads.count, report.uploads.bytes, "uploads"),
        ("outputs (objects)", report.outputs.count, report.outputs.bytes, "outputs"),
        ("results of succeeded jobs", report.results_expired, None, "outputs"),
        ("jobs (rows)", report.jobs, None, "jobs"),
        ("batches (rows)", report.batches, None, "jobs"),
        ("webhook deliveries (rows)", report.webhook_deliveries, None, "jobs"),
    ]
    for what, count, size, kind in rows:
        table.add_row(cell(what), cell(count), cell("" if size is None else _bytes(size)),
                      cell(_when(cutoffs[kind])))
    if report.uploads_in_use:
        table.caption = (f"kept {report.uploads_in_use} expired upload(s) that queued or "
                         "running jobs read")
    console.print(table)
    say(report.summary())


def _when(cutoff: datetime | None) -> str:
    return "kept forever (0 days)" if cutoff is None else f"{cutoff:%Y-%m-%d %H:%M:%S} UTC"


def _bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
