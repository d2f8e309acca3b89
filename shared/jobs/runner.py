"""Process claimed jobs: fetch → decode → pipeline → encode → store → state.

One code path for every runtime: the embedded runner calls :meth:`JobRunner.run` in
process, Celery tasks call it in workers. The SQL row is the source of truth: every state
change is a conditional UPDATE in the job store, so a job that was cancelled, or claimed
by someone else, is never overwritten here.

A job is one input with one edit request. A request with a strength sweep stands for several
variants (:func:`shared.core.edits.expand_variants`); each is stored as its own result, and the
input is inverted once for all of them. With alignment, each face of the photo is one
pipeline image and each variant is pasted back into the whole photo.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from shared.core.contracts import JobOptions
from shared.core.edits import EditSpec, expand_variants, variant_label
from shared.core.errors import (
    FaceditError,
    ImageTooLarge,
    InputNotFound,
    JobCancelled,
)
from shared.editing.faces import assemble, prepare_faces
from shared.editing.imaging import decode_image, encode_image, to_tensor, to_uint8

log = logging.getLogger(__name__)

# Called with the ids of jobs in flight and how far along they are (0…1).
ProgressListener = Callable[[Sequence[str], float], None]


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
    edits: list[EditSpec] = field(default_factory=list)
    variants: list[tuple[EditSpec, ...]] = field(default_factory=list)
    options: JobOptions = field(default_factory=JobOptions)
    pixels: object = None  # np.ndarray
    faces: object = None  # shared.editing.faces.FaceInputs
    latent: object = None  # torch.Tensor (faces, L, D) from a stored latent file, or None
    sha256: str | None = None
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage


class JobRunner:
    """Runs jobs through an :class:`~shared.editing.pipeline.EditPipeline` with one model bundle."""

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
        on_progress: ProgressListener | None = None,
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
        self.on_progress = on_progress

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
            work = _Work(job=job, started=time.perf_counter())
            try:
                self._prepare(work)
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

    def _prepare(self, work: _Work) -> None:
        """Parse the request, fetch and decode the input, find its faces, read its latent."""
        job = work.job
        work.options = JobOptions.from_options(job.options)
        work.edits = [EditSpec.from_dict(e) for e in job.edits]
        work.variants = expand_variants(work.edits)
        for spec in work.edits:
            self.pipeline.bundle.check_attribute(spec.attribute)
        data = self.fetch(job.input_uri)
        work.stages["fetch"] = time.perf_counter() - work.started
        decoded = decode_image(
            data, min_side=self.min_side, max_pixels=self.max_pixels,
            name=job.input_name or job.input_uri,
        )  # fmt: skip
        work.pixels, work.sha256 = decoded.pixels, decoded.sha256
        work.stages["decode"] = time.perf_counter() - work.started - work.stages["fetch"]
        self._progress([job.id], 0.05, "decode")
        aligned_at = time.perf_counter()
        work.faces = prepare_faces(work.pixels, work.options, self._output_size(job))
        if work.faces.crops is not None:
            work.stages["align"] = time.perf_counter() - aligned_at
        if work.options.latent is not None:
            work.latent = self._read_latent(work)
        self._progress([job.id], 0.1, "align")

    def _read_latent(self, work: _Work):
        from shared.editing.latents import check_latent, decode_latent

        bundle = self.pipeline.bundle
        if not hasattr(bundle, "style_dim"):
            from shared.core.errors import ModelUnavailable

            raise ModelUnavailable("latent: these models (null pipeline) have no W+ space")
        name = work.options.latent
        stored = decode_latent(self.fetch(name, limit=64 * 1024 * 1024), name)
        check_latent(stored, len(work.faces.images), bundle.n_latent, bundle.style_dim, name)
        return stored.w

    def _output_size(self, job) -> int:
        from shared.core.contracts import PipelineConfig

        config = PipelineConfig.from_options(job.options.get("pipeline"))
        return int(config.output_size or self.pipeline.bundle.output_size)

    def fetch(self, uri: str, limit: int | None = None) -> bytes:
        limit = limit or self.max_image_bytes
        parsed = urlparse(uri)
        if parsed.scheme == "file" and self.allow_local_inputs:
            path = Path(unquote(parsed.path))
            if not path.is_file():
                raise InputNotFound(f"{path}: no such file")
            size = path.stat().st_size
            if size > limit:
                raise ImageTooLarge(
                    f"{path}: {size} bytes exceeds the limit of {limit} (FACEDIT_MAX_IMAGE_BYTES)"
                )
            return path.read_bytes()
        key = self.storage.key_from_uri(uri)
        return self.storage.get(key)

    def _run_group(self, group: list[_Work]) -> list[JobOutcome]:
        import torch

        from shared.core.contracts import PipelineConfig
        from shared.editing.pipeline import resize

        try:
            config = PipelineConfig.from_options(group[0].job.options.get("pipeline"))
            pipeline = self.pipeline.with_config(config)
            size = pipeline.output_size
            # one pipeline image per face (aligned jobs may have several), all in one batch
            faces = [(w, f) for w in group for f in range(len(w.faces.images))]
            images = torch.cat(
                [resize(to_tensor(w.faces.images[f]), size) for w, f in faces], dim=0
            )
            latents = [None if w.latent is None else w.latent[f] for w, f in faces]
            timings: dict[str, float] = {}
            on_stage = self._stage_listener([w.job.id for w in group], timings)
            output = pipeline.run(images, [w.variants for w, _ in faces], latents=latents,
                                  on_stage=on_stage)
        except JobCancelled:
            return [self._outcome(w, "cancelled") for w in group]
        except FaceditError as exc:
            return [self._end(w, exc) for w in group]
        except Exception as exc:  # noqa: BLE001
            log.exception("pipeline failed for %d job(s)", len(group))
            return [self._fail(w, "internal_error", f"{type(exc).__name__}: {exc}") for w in group]
        outcomes, first_image = [], 0
        for work in group:
            work.stages.update(timings)
            outcomes.append(self._store_result(work, first_image, output))
            first_image += len(work.faces.images)
        return outcomes

    def _store_result(self, work: _Work, first_image: int, output) -> JobOutcome:
        """Store one job's results; its pipeline images are ``first_image …`` in ``output``."""
        job = work.job
        started = time.perf_counter()
        try:
            if self.store.is_cancelled(job.id):
                return self._outcome(work, "cancelled")
            results = [
                self._store_variant(work, k, _items(output, first_image, len(work.faces.images), k),
                                    output)
                for k in range(len(work.variants))
            ]  # fmt: skip
            latent_uri = self._store_latent(work, first_image, output)
            work.stages["store"] = time.perf_counter() - started
            metrics = {"stages": work.stages, "batch_size": len(output.result)}
            won = self.store.succeed(
                job.id, results[0]["uri"], results[0]["intermediates"],
                input_sha256=work.sha256, metrics=metrics, outputs=results,
                latent_uri=latent_uri, suppressor=output.suppressor or None,
            )  # fmt: skip
            if not won:
                return self._outcome(work, "cancelled")
            return self._outcome(work, "succeeded", output_uri=results[0]["uri"])
        except FaceditError as exc:
            return self._end(work, exc)
        except Exception as exc:  # noqa: BLE001
            log.exception("storing the result of job %s failed", job.id)
            return self._fail(work, "internal_error", f"{type(exc).__name__}: {exc}")

    def _store_variant(self, work: _Work, k: int, items: list[int], output) -> dict:
        """Paste, encode and store variant ``k``; its items are one per face."""
        from shared.core.storage import output_key

        job, options = work.job, work.options
        count = len(work.variants)
        final = assemble(
            work.faces,
            [to_uint8(output.result[i]) for i in items],
            [to_uint8(output.mask[i]) for i in items],
        )
        uri = self.storage.put(
            output_key(job.batch_id, job.id, _object_name("result", k, count, options.format)),
            encode_image(final, options.format, quality=options.quality),
            content_type=options.content_type,
        )
        intermediates = {}
        if _wants_intermediates(job):
            for name, tensor in output.intermediates().items():
                intermediates[name] = self.storage.put(
                    output_key(job.batch_id, job.id, _object_name(name, k, count, "png")),
                    encode_image(to_uint8(tensor[items[0]]), "png"),
                    content_type="image/png",
                )
        variant = work.variants[k]
        return {"label": variant_label(variant), "edits": [e.to_dict() for e in variant],
                "uri": uri, "intermediates": intermediates}

    def _store_latent(self, work: _Work, first_image: int, output) -> str | None:
        if not work.options.save_latents or getattr(output, "latents", None) is None:
            return None
        from shared.core.storage import output_key
        from shared.editing.latents import encode_latent

        faces = len(work.faces.images)
        codes = output.latents[first_image : first_image + faces]
        data = encode_latent(codes, work.sha256, self.pipeline.bundle.fingerprint)
        return self.storage.put(output_key(work.job.batch_id, work.job.id, "latent.pt"), data,
                                content_type="application/octet-stream")

    # ------------------------------------------------------------ helpers

    def _progress(self, job_ids: Sequence[str], fraction: float, stage: str) -> None:
        for job_id in job_ids:
            self.store.set_progress(job_id, fraction, stage)
        if self.on_progress is not None:
            self.on_progress(job_ids, fraction)

    def _stage_listener(
        self, job_ids: list[str], timings: dict[str, float] | None = None
    ) -> Callable[[str], None]:
        """Writes progress after each stage and stops the batch once all its jobs are cancelled.

        Jobs cancelled while others in the batch go on are dropped when results are stored.
        ``timings`` receives the seconds each stage took (its own bookkeeping excluded).
        """
        last = [time.perf_counter()]

        def on_stage(stage: str) -> None:
            if timings is not None:
                timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - last[0]
            live = [job_id for job_id in job_ids if not self.store.is_cancelled(job_id)]
            if not live:
                raise JobCancelled(f"all {len(job_ids)} job(s) of the batch were cancelled")
            self._progress(live, STAGE_PROGRESS.get(stage, 0.0), stage)
            last[0] = time.perf_counter()

        return on_stage

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


def _wants_intermediates(job) -> bool:
    return bool((job.options.get("pipeline") or {}).get("intermediates"))


def _items(output, first_image: int, faces: int, k: int) -> list[int]:
    """Output items of variant ``k`` for the images ``first_image …`` (one per face)."""
    return [output.source.index(image) + k for image in range(first_image, first_image + faces)]


def _object_name(name: str, k: int, count: int, ext: str) -> str:
    """``result.png`` for a single result; ``result.3.png`` for a sweep's fourth step."""
    return f"{name}.{ext}" if count == 1 else f"{name}.{k}.{ext}"


def _group_by_options(works: list[_Work]) -> list[list[_Work]]:
    """Jobs with identical pipeline options run as one batch."""
    groups: dict[str, list[_Work]] = {}
    for work in works:
        key = json.dumps(work.job.options.get("pipeline") or {}, sort_keys=True)
        groups.setdefault(key, []).append(work)
    return list(groups.values())
