"""The embedded runtime: SQLite job store, local storage, an in-process worker.

``facedit run`` creates a batch with one job per image in the SQL store and processes the
jobs through :class:`shared.jobs.runner.JobRunner`, the same code the Celery task calls. Each
finished job's results are then placed in OUT under names taken from the input
(:mod:`facedit.outputs`) and logged in ``OUT/jobs.jsonl`` (:mod:`facedit.jobs_log`).

Resuming: an input whose bytes, edits, options and models match a succeeded row of
``OUT/jobs.jsonl`` whose files are all still there is skipped, and its earlier row stands.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facedit.jobs_log import LogRow, append_rows, read_rows, request_key
from facedit.outputs import OutputNamer, place_file, write_new
from shared.core.contracts import PipelineConfig
from shared.core.edits import EditSpec

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class RunRecord:
    """One input of a run and what became of it (``skipped``: done by an earlier run)."""

    path: Path
    row: LogRow
    skipped: bool = False

    @property
    def status(self) -> str:
        return "skipped" if self.skipped else self.row.status


@dataclass
class RunSummary:
    batch_id: str | None
    records: list[RunRecord] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return sum(r.skipped for r in self.records)

    def count(self, status: str) -> int:
        return sum(r.row.status == status and not r.skipped for r in self.records)


def collect_inputs(paths: Iterable[Path]) -> list[Path]:
    """Files as given; folders contribute their image files (sorted, non-recursive).

    Missing paths are kept, so that they become ``input_not_found`` jobs.
    """
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            )
        else:
            found.append(path)
    return found


def file_sha256(path: Path, limit: int) -> str | None:
    """The input's sha256, or None when it cannot be a valid input (missing, too large)."""
    try:
        if not path.is_file() or path.stat().st_size > limit:
            return None
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    except OSError:
        return None


def run_embedded(
    inputs: Sequence[Path],
    edits: Sequence[EditSpec],
    out_dir: Path,
    *,
    store: Any,
    storage: Any,
    pipeline: Any,
    job_options: dict[str, Any],
    batch_size: int,
    settings: Any,
    resume: bool = True,
    on_progress: Callable[[Sequence[str], float], None] | None = None,
    on_done: Callable[[RunRecord], None] | None = None,
) -> RunSummary:
    from shared.jobs import NewJob
    from shared.jobs.runner import JobRunner

    out_dir.mkdir(parents=True, exist_ok=True)
    previous = read_rows(out_dir) if resume else []
    done = _finished_requests(previous, out_dir)
    edit_dicts = [e.to_dict() for e in edits]
    options_key = _resolved_options(pipeline, job_options)
    models = pipeline.bundle.fingerprint
    summary = RunSummary(batch_id=None)
    pending: list[tuple[int, Path, str | None, str | None]] = []
    records: dict[int, RunRecord] = {}
    for index, path in enumerate(inputs):
        sha = file_sha256(path, settings.max_image_bytes)
        key = request_key(sha, edit_dicts, options_key, models) if sha else None
        if key in done:
            row = done[key]
            row.input = str(path)
            records[index] = RunRecord(path, row, skipped=True)
            if on_done:
                on_done(records[index])
        else:
            pending.append((index, path, sha, key))
    if pending:
        jobs = [
            NewJob(input_uri=path.absolute().as_uri(), edits=edit_dicts, options=job_options,
                   input_name=str(path), input_sha256=sha)
            for _, path, sha, _ in pending
        ]  # fmt: skip
        batch = store.create_batch(jobs, options={**job_options, "runtime": "embedded"})
        summary.batch_id = batch.id
        runner = JobRunner.from_settings(store, storage, pipeline, settings,
                                         worker_id="embedded", allow_local_inputs=True,
                                         on_progress=on_progress)
        # names of earlier rows stay reserved, except those of the requests run again now
        # (a deleted result comes back under its old name)
        rerun = {key for *_, key in pending}
        namer = OutputNamer(out_dir, _files_of([r for r in previous if r.request not in rerun]))
        by_job = dict(zip(batch.job_ids, pending, strict=True))
        ids = list(batch.job_ids)
        # The next batch is claimed and read while the current one runs, and the previous
        # one is stored meanwhile (JobRunner.process_batches).
        claims = (runner.claim(ids[start : start + batch_size])
                  for start in range(0, len(ids), batch_size))
        try:
            for outcomes in runner.process_batches(claims, store_threads=settings.store_threads):
                rows = []
                for outcome in outcomes:
                    index, path, _, key = by_job[outcome.job_id]
                    row = _log_row(store.get_job(outcome.job_id), outcome, key, storage,
                                   out_dir, namer)
                    rows.append(row)
                    records[index] = RunRecord(path, row)
                    if on_done:
                        on_done(records[index])
                append_rows(out_dir, rows)
        except BaseException:
            # Interrupted (Ctrl-C) or broken: nothing will run the rest, so it is cancelled
            # rather than left queued or running for ever (`facedit gc` removes finished
            # rows only). A rerun with the same --out resumes from jobs.jsonl.
            with contextlib.suppress(Exception):
                store.cancel_batch(batch.id)
            raise
    summary.records = [records[i] for i in sorted(records)]
    return summary


def _resolved_options(pipeline: Any, job_options: dict[str, Any]) -> dict[str, Any]:
    """The job options with the pipeline's defaults filled in and ``auto`` resolved."""
    config = PipelineConfig.from_options(job_options.get("pipeline"))
    resolved = config.to_options()
    resolved["suppressor"] = pipeline.with_config(config).suppressor_name \
        if hasattr(pipeline, "suppressor_name") else config.suppressor
    return {**job_options, "pipeline": resolved}


def _finished_requests(rows: list[LogRow], out_dir: Path) -> dict[str, LogRow]:
    """The latest succeeded row of each request whose files all still exist."""
    done: dict[str, LogRow] = {}
    for row in rows:
        if not row.request:
            continue
        if row.status == "succeeded" and row.results and all(
            (out_dir / name).is_file() for name in _row_files(row)
        ):
            done[row.request] = row
        else:
            done.pop(row.request, None)
    return done


def _row_files(row: LogRow) -> list[str]:
    names = []
    for result in row.results:
        names.append(result["file"])
        names.extend((result.get("intermediates") or {}).values())
    if row.latent:
        names.append(row.latent)
    return names


def _files_of(rows: list[LogRow]) -> set[str]:
    return {name for row in rows for name in _row_files(row)}


def _log_row(job: Any, outcome: Any, key: str | None, storage: Any, out_dir: Path,
             namer: OutputNamer) -> LogRow:
    """The job's log row; a succeeded job's files are placed in OUT under its input's name."""
    row = LogRow(
        input=job.input_name, job_id=job.id, status=outcome.status,
        error_code=outcome.error_code, error=outcome.error_message,
        output=_local_path(storage, outcome.output_uri), seconds=outcome.seconds,
        sha256=job.input_sha256, request=key, suppressor=job.suppressor,
    )  # fmt: skip
    if outcome.status == "succeeded":
        row.results, row.latent = place_outputs(job, storage, out_dir, namer)
    return row


def place_outputs(job: Any, storage: Any, out_dir: Path, namer: OutputNamer
                  ) -> tuple[list[dict[str, Any]], str | None]:
    """Link or copy a job's results (and intermediates, latent) to ``<stem>.<label>.<ext>``."""
    from shared.core.contracts import LATENT_SUFFIX

    planned: list[tuple[str, str]] = []  # (suffix, uri)
    for output in job.outputs:
        label = output["label"] or "result"
        planned.append((f".{label}.{_extension(output['uri'])}", output["uri"]))
        for name, uri in sorted((output.get("intermediates") or {}).items()):
            planned.append((f".{label}.{name}.{_extension(uri)}", uri))
    if job.latent_uri:
        planned.append((LATENT_SUFFIX, job.latent_uri))
    stem = namer.stem_for(Path(job.input_name or job.id).stem, [s for s, _ in planned])
    files = {uri: stem + suffix for suffix, uri in planned}
    for suffix, uri in planned:
        _materialise(storage, uri, out_dir / (stem + suffix))
    results = [
        {"label": o["label"], "file": files[o["uri"]],
         "intermediates": {n: files[u] for n, u in sorted((o.get("intermediates") or {}).items())}}
        for o in job.outputs
    ]  # fmt: skip
    return results, files.get(job.latent_uri) if job.latent_uri else None


def _materialise(storage: Any, uri: str, target: Path) -> None:
    local = _local_path(storage, uri)
    if local is not None and not local.startswith(("s3://", "file://")):
        place_file(Path(local), target)
    else:
        write_new(target, storage.get(storage.key_from_uri(uri)))


def _extension(uri: str) -> str:
    return uri.rsplit(".", 1)[-1]


def _local_path(storage: Any, uri: str | None) -> str | None:
    if uri is None:
        return None
    root = getattr(storage, "root", None)
    if root is not None and uri.startswith("file://"):
        return str(Path(root) / storage.key_from_uri(uri))
    return uri
