"""The embedded runtime: SQLite job store, local storage, an in-process worker.

``facedit run`` creates a batch with one job per image in the SQL store and processes
the jobs through :class:`shared.runner.JobRunner`, the same code the Celery task calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from shared.edits import EditSpec
from shared.runner import JobOutcome

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class RunRecord:
    input: str
    job_id: str
    outcome: JobOutcome
    output: str | None


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


def run_embedded(
    inputs: Sequence[Path],
    edits: Sequence[EditSpec],
    out_dir: Path,
    *,
    store,
    storage,
    pipeline,
    job_options: dict,
    batch_size: int,
    settings,
    on_done: Callable[[RunRecord], None] | None = None,
) -> tuple[str, list[RunRecord]]:
    from shared.jobs import NewJob
    from shared.runner import JobRunner

    jobs = [
        NewJob(
            input_uri=path.absolute().as_uri(),
            edits=[e.to_dict() for e in edits],
            options=job_options,
            input_name=str(path),
        )
        for path in inputs
    ]
    batch = store.create_batch(jobs, options={**job_options, "runtime": "embedded"})
    runner = JobRunner(
        store, storage, pipeline,
        worker_id="embedded", lease_seconds=settings.lease_seconds,
        min_side=settings.min_image_side, max_pixels=settings.max_image_pixels,
        max_image_bytes=settings.max_image_bytes, allow_local_inputs=True,
    )
    job_records = store.list_jobs(batch.id, limit=len(jobs) + 1)
    by_id = {job.id: job for job in job_records}
    records: list[RunRecord] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "jobs.jsonl", "w", encoding="utf-8") as log_file:
        for start in range(0, len(job_records), batch_size):
            chunk = [job.id for job in job_records[start : start + batch_size]]
            for outcome in runner.run(chunk):
                job = by_id[outcome.job_id]
                output = _local_path(storage, outcome.output_uri)
                record = RunRecord(job.input_name, job.id, outcome, output)
                records.append(record)
                log_file.write(json.dumps({
                    "input": record.input,
                    "job_id": record.job_id,
                    "status": outcome.status,
                    "error_code": outcome.error_code,
                    "error": outcome.error_message,
                    "output": output,
                    "seconds": round(outcome.seconds, 4),
                }) + "\n")
                log_file.flush()
                if on_done:
                    on_done(record)
    return batch.id, records


def _local_path(storage, uri: str | None) -> str | None:
    if uri is None:
        return None
    root = getattr(storage, "root", None)
    if root is not None and uri.startswith("file://"):
        return str(Path(root) / storage.key_from_uri(uri))
    return uri
