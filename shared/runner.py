"""Process claimed jobs: fetch → decode → pipeline → encode → store → state.

One code path for every runtime: the embedded runner calls :meth:`JobRunner.run` in
process, Celery tasks call it in workers. The SQL row is the source of truth: every state
change is a conditional UPDATE in the job store, so a job that was cancelled, or claimed
by someone else, is never overwritten here.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from shared.edits import EditSpec
from shared.errors import (
    FaceditError,
    ImageTooLarge,
    InputNotFound,
    InvalidEditRequest,
    JobCancelled,
)
from shared.face_stage import assemble, prepare_faces
from shared.imaging import decode_image, encode_image, to_tensor, to_uint8

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobOutcome:
    job_id: str
    status: str
    seconds: float
    output_uri: str | None = None
    error_code: str | None = None
    error_message: str | None = None


@dataclass
class _Work:
    job: object  # JobRecord
    started: float
    edits: list[EditSpec]
    pixels: object = None  # np.ndarray
    faces: object = None  # shared.face_stage.FaceInputs
    sha256: str | None = None
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage


class JobRunner:
    """Runs jobs through an :class:`~shared.pipeline.EditPipeline` with one model bundle."""

    def __init__(
        self,
        store,
        storage,
        pipeline,
        *,
        worker_id: str = "embedded",
        lease_seconds: int = 600,
        min_side: int = 64,
        max_pixels: int = 64_000_000,
        max_image_bytes: int = 25 * 1024 * 1024,
        allow_local_inputs: bool = False,
    ) -> None:
        self.store = store
        self.storage = storage
        self.pipeline = pipeline
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.min_side = min_side
        self.max_pixels = max_pixels
        self.max_image_bytes = max_image_bytes
        self.allow_local_inputs = allow_local_inputs

    # ------------------------------------------------------------ entry points

    def run(self, job_ids: Sequence[str]) -> list[JobOutcome]:
        """Claim the given jobs (those still queued) and process them as one batch."""
        claimed = []
        for job_id in job_ids:
            job = self.store.claim(job_id, self.worker_id, self.lease_seconds)
            if job is not None:
                claimed.append(job)
        return self.process(claimed)

    def run_next(self, limit: int, batch_id: str | None = None) -> list[JobOutcome]:
        """Claim up to ``limit`` of the oldest queued jobs and process them as one batch."""
        jobs = self.store.claim_next(limit, self.worker_id, self.lease_seconds, batch_id=batch_id)
        return self.process(jobs)

    def process(self, jobs: Sequence) -> list[JobOutcome]:
        outcomes: list[JobOutcome] = []
        ready: list[_Work] = []
        for job in jobs:
            work = _Work(job=job, started=time.perf_counter(), edits=[])
            try:
                work.edits = [EditSpec.from_dict(e) for e in job.edits]
                for spec in work.edits:
                    self.pipeline.bundle.check_attribute(spec.attribute)
                data = self.fetch(job.input_uri)
                work.stages["fetch"] = time.perf_counter() - work.started
                decoded = decode_image(
                    data, min_side=self.min_side, max_pixels=self.max_pixels,
                    name=job.input_name or job.input_uri,
                )
                work.pixels, work.sha256 = decoded.pixels, decoded.sha256
                work.stages["decode"] = time.perf_counter() - work.started - work.stages["fetch"]
                self.store.set_progress(job.id, 0.05, "decode")
                aligned_at = time.perf_counter()
                work.faces = prepare_faces(work.pixels, job.options, self._output_size(job))
                if work.faces.crops is not None:
                    work.stages["align"] = time.perf_counter() - aligned_at
                self.store.set_progress(job.id, 0.1, "align")
                ready.append(work)
            except FaceditError as exc:
                outcomes.append(self._end(work, exc))
            except Exception as exc:  # noqa: BLE001 - a job must fail, never the worker
                log.exception("job %s failed while decoding", job.id)
                outcomes.append(self._fail(work, "internal_error", f"{type(exc).__name__}: {exc}"))
        for group in _group_by_options(ready):
            outcomes.extend(self._run_group(group))
        order = {job.id: i for i, job in enumerate(jobs)}
        return sorted(outcomes, key=lambda o: order[o.job_id])

    # ------------------------------------------------------------ stages

    def _output_size(self, job) -> int:
        from shared.pipeline import PipelineConfig

        config = PipelineConfig.from_options(job.options.get("pipeline"))
        return int(config.output_size or self.pipeline.bundle.output_size)

    def fetch(self, uri: str) -> bytes:
        parsed = urlparse(uri)
        if parsed.scheme == "file" and self.allow_local_inputs:
            path = Path(unquote(parsed.path))
            if not path.is_file():
                raise InputNotFound(f"{path}: no such file")
            size = path.stat().st_size
            if size > self.max_image_bytes:
                raise ImageTooLarge(
                    f"{path}: {size} bytes exceeds the limit of {self.max_image_bytes} "
                    "(FACEDIT_MAX_IMAGE_BYTES)"
                )
            return path.read_bytes()
        key = self.storage.key_from_uri(uri)
        return self.storage.get(key)

    def _run_group(self, group: list[_Work]) -> list[JobOutcome]:
        import torch

        from shared.pipeline import PipelineConfig, resize

        try:
            config = PipelineConfig.from_options(group[0].job.options.get("pipeline"))
            pipeline = self.pipeline.with_config(config)
            size = pipeline.output_size
            # one pipeline item per face (aligned jobs may have several), all in one batch
            items = [(w, image) for w in group for image in w.faces.images]
            images = torch.cat([resize(to_tensor(image), size) for _, image in items], dim=0)
            timings: dict[str, float] = {}
            on_stage = _stage_listener(self.store, [w.job.id for w in group], timings)
            output = pipeline(images, [w.edits for w, _ in items], on_stage=on_stage)
        except JobCancelled:
            return [self._outcome(w, "cancelled") for w in group]
        except FaceditError as exc:
            return [self._end(w, exc) for w in group]
        except Exception as exc:  # noqa: BLE001
            log.exception("pipeline failed for %d job(s)", len(group))
            return [self._fail(w, "internal_error", f"{type(exc).__name__}: {exc}") for w in group]
        outcomes, first = [], 0
        for work in group:
            work.stages.update(timings)
            outcomes.append(self._store_result(work, first, output, config))
            first += len(work.faces.images)
        return outcomes

    def _store_result(self, work: _Work, first: int, output, config) -> JobOutcome:
        """Store one job's result; its pipeline items are ``first …`` in ``output``."""
        from shared.storage import output_key

        job = work.job
        started = time.perf_counter()
        index = first
        try:
            if self.store.is_cancelled(job.id):
                return self._outcome(work, "cancelled")
            count = len(work.faces.images)
            span = range(first, first + count)
            final = assemble(
                work.faces,
                [to_uint8(output.result[i]) for i in span],
                [to_uint8(output.mask[i]) for i in span],
            )
            fmt = job.options.get("format", "png")
            if fmt not in {"png", "jpg", "webp"}:
                raise InvalidEditRequest(f"format: {fmt!r} is not one of png, jpg, webp")
            result_uri = self.storage.put(
                output_key(job.batch_id, job.id, f"result.{fmt}"),
                encode_image(final, fmt),
                content_type=f"image/{'jpeg' if fmt == 'jpg' else fmt}",
            )
            intermediates = {}
            if config.intermediates:
                for name, tensor in output.intermediates().items():
                    image = to_uint8(tensor[index])
                    intermediates[name] = self.storage.put(
                        output_key(job.batch_id, job.id, f"{name}.png"),
                        encode_image(image, "png"),
                        content_type="image/png",
                    )
            work.stages["store"] = time.perf_counter() - started
            metrics = {"stages": work.stages, "batch_size": len(output.result)}
            won = self.store.succeed(
                job.id, result_uri, intermediates, input_sha256=work.sha256, metrics=metrics
            )
            if not won:
                return self._outcome(work, "cancelled")
            return self._outcome(work, "succeeded", output_uri=result_uri)
        except FaceditError as exc:
            return self._end(work, exc)
        except Exception as exc:  # noqa: BLE001
            log.exception("storing the result of job %s failed", job.id)
            return self._fail(work, "internal_error", f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------ helpers

    def _end(self, work: _Work, exc: FaceditError) -> JobOutcome:
        """Fail the job, or give it back to the queue if the error is transient (storage
        down): it is retried while attempts remain."""
        if not exc.transient:
            return self._fail(work, exc.code, exc.message)
        status = self.store.release(work.job.id, exc.code, exc.message)
        status = "queued" if status is None else str(getattr(status, "value", status))
        return self._outcome(work, status, error_code=exc.code, error_message=exc.message)

    def _fail(self, work: _Work, code: str, message: str) -> JobOutcome:
        self.store.fail(work.job.id, code, message)
        return self._outcome(work, "failed", error_code=code, error_message=message)

    def _outcome(self, work: _Work, status: str, **kwargs) -> JobOutcome:
        return JobOutcome(work.job.id, status, time.perf_counter() - work.started, **kwargs)


STAGE_PROGRESS = {
    "invert": 0.25, "edit": 0.3, "generate": 0.5, "mask": 0.6, "blend": 0.7, "suppress": 0.9,
}


def _stage_listener(
    store, job_ids: list[str], timings: dict[str, float] | None = None
) -> Callable[[str], None]:
    """Writes progress after each stage and stops the batch once all its jobs are cancelled.

    Jobs cancelled while others in the batch go on are dropped when results are stored.
    ``timings`` receives the seconds each stage took (its own bookkeeping excluded).
    """
    last = [time.perf_counter()]

    def on_stage(stage: str) -> None:
        if timings is not None:
            timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - last[0]
        cancelled = 0
        for job_id in job_ids:
            if store.is_cancelled(job_id):
                cancelled += 1
            else:
                store.set_progress(job_id, STAGE_PROGRESS.get(stage, 0.0), stage)
        if cancelled == len(job_ids):
            raise JobCancelled(f"all {cancelled} job(s) of the batch were cancelled")
        last[0] = time.perf_counter()

    return on_stage


def _group_by_options(works: list[_Work]) -> list[list[_Work]]:
    """Jobs with identical pipeline options run as one batch."""
    groups: dict[str, list[_Work]] = {}
    for work in works:
        key = json.dumps(work.job.options.get("pipeline") or {}, sort_keys=True)
        groups.setdefault(key, []).append(work)
    return list(groups.values())
