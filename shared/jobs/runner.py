"""Process claimed jobs: read → fetch → decode → faces → pipeline → encode → store → state.

One code path for every runtime, built with :meth:`JobRunner.from_settings`: the embedded
runner and a Celery task both hand :meth:`JobRunner.process_batches` the batches they claim,
so that I/O overlaps the model stage (the next batch is fetched and decoded, the previous
one encoded and stored, while the pipeline runs); :meth:`JobRunner.process` runs one batch
with each step after the other. The SQL row is the source of truth: every state change is a
conditional UPDATE in the job store, so a job that was cancelled, or claimed by someone else,
is never overwritten here.

A job is one input with one edit request. A request with a strength sweep stands for several
variants (:func:`shared.core.edits.expand_variants`); each is stored as its own result, and the
input is inverted once for all of them. With alignment, each face of the photo is one pipeline
image and each variant is pasted back into the whole photo.

The path of one job, method by method::

    _prepare        _read_request → _fetch → _decode → _find_faces → _read_latent
                    (_prepare_batch: every job of a claimed batch, grouped by options)
    _run_model      one pipeline call for every job with the same pipeline options
    _finish         per variant: _store_variant (paste back, encode, store); _store_latent;
                    then the state (succeeded, or cancelled if that won the race)

A problem with one job ends that job (:meth:`_end`): a permanent error fails it with its
stable code; a transient one (storage, database or broker down) puts it back in the queue with
a backoff (:meth:`JobStore.postpone`: it does not use up an attempt, and is retried for
``transient_retry_budget_seconds``); anything else is ``internal_error``. The other jobs of the
batch go on. Progress updates are best effort: a database hiccup there never ends a job.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from shared.core.config import DEFAULT_STORE_THREADS
from shared.core.contracts import JobOptions, PipelineConfig
from shared.core.edits import EditSpec, expand_variants, variant_label
from shared.core.errors import (
    DatabaseUnavailable,
    FaceditError,
    ImageTooLarge,
    InputNotFound,
    JobCancelled,
)
from shared.editing.faces import FaceInputs, assemble, prepare_faces
from shared.editing.imaging import decode_image, encode_image, to_batch, to_uint8
from shared.editing.interface import EditingPipeline, PipelineResult

log = logging.getLogger(__name__)

# A job's progress (0…1) after each of its steps: the runner's own and the pipeline's stages.
PROGRESS = {
    "decode": 0.05, "align": 0.1, "invert": 0.25, "edit": 0.3, "generate": 0.5, "mask": 0.6,
    "blend": 0.7, "suppress": 0.9,
}  # fmt: skip
LATENT_MAX_BYTES = 64 * 1024 * 1024

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
    stages: dict[str, float] = field(default_factory=dict)  # a succeeded job's seconds per step


@dataclass
class _Work:
    """One claimed job on its way through the runner."""

    job: Any  # shared.jobs.JobRecord
    started: float
    options: JobOptions = field(default_factory=JobOptions)
    variants: list[tuple[EditSpec, ...]] = field(default_factory=list)
    sha256: str | None = None
    faces: FaceInputs | None = None
    latent: Any = None  # torch.Tensor (faces, L, D) from a stored latent file, or None
    stages: dict[str, float] = field(default_factory=dict)  # seconds per step
    images: list[int] = field(default_factory=list)  # the pipeline image of each face
    items: list[list[int]] = field(default_factory=list)  # per face: output item per variant


class JobRunner:
    """Runs jobs through an :class:`~shared.editing.interface.EditingPipeline`."""

    def __init__(
        self,
        store: Any,
        storage: Any,
        pipeline: EditingPipeline,
        *,
        worker_id: str = "embedded",
        lease_seconds: int = 600,
        min_side: int = 64,
        max_pixels: int = 64_000_000,
        max_image_bytes: int = 25 * 1024 * 1024,
        allow_local_inputs: bool = False,
        on_progress: ProgressListener | None = None,
        transient_retry_seconds: float = 2.0,
        transient_retry_budget_seconds: float = 900.0,
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
        self.transient_retry_seconds = transient_retry_seconds
        self.transient_retry_budget_seconds = transient_retry_budget_seconds

    @classmethod
    def from_settings(
        cls, store: Any, storage: Any, pipeline: EditingPipeline, settings: Any, **overrides: Any
    ) -> JobRunner:
        """A runner with the limits of ``settings`` (shared.core.config.Settings)."""
        limits = {
            "lease_seconds": settings.lease_seconds, "min_side": settings.min_image_side,
            "max_pixels": settings.max_image_pixels, "max_image_bytes": settings.max_image_bytes,
            "transient_retry_seconds": settings.transient_retry_seconds,
            "transient_retry_budget_seconds": settings.transient_retry_budget_seconds,
        }  # fmt: skip
        return cls(store, storage, pipeline, **{**limits, **overrides})

    # ------------------------------------------------------------ entry points

    def run(self, job_ids: Sequence[str]) -> list[JobOutcome]:
        """Claim the given jobs (those still queued) and process them as one batch."""
        return self.process(self.claim(job_ids))

    def claim(self, job_ids: Sequence[str]) -> list[Any]:
        """Claim those of ``job_ids`` that are still queued, for this runner."""
        claimed = []
        for job_id in job_ids:
            job = self.store.claim(job_id, self.worker_id, self.lease_seconds)
            if job is not None:
                claimed.append(job)
        return claimed

    def process(self, jobs: Sequence[Any]) -> list[JobOutcome]:
        """Prepare each claimed job, run them in groups, store each result; outcomes in the
        order of ``jobs``. One step after the other, in this thread."""
        batch = self._prepare_batch(jobs)
        for group in batch.groups:
            output = self._run_model(group, batch)
            if output is not None:
                batch.outcomes.extend(self._finish_guarded(work, output) for work in group)
        return batch.ordered()

    def process_batches(
        self, batches: Iterable[Sequence[Any]], *, store_threads: int = DEFAULT_STORE_THREADS
    ) -> Iterator[list[JobOutcome]]:
        """Process several batches with their I/O overlapped with the model stage: while
        batch N runs through the pipeline (in this thread), batch N+1 is claimed, fetched,
        decoded and aligned by a prefetch thread, and the results of batch N-1 are encoded
        and stored, and their state recorded, by ``store_threads`` threads. Yields each
        batch's outcomes (in the order of its jobs), batch after batch.

        ``batches`` is iterated in the prefetch thread, one batch ahead (claiming is part of
        it: a worker claims the next batch while the current one runs). Every job goes
        through the same steps as :meth:`process`, so results and state transitions are
        the same; only their timing overlaps. If this stops early (an exception here, or
        the caller stops iterating), the stores in flight finish — a stored result is
        always recorded — and a batch that was prefetched but not run stays claimed (the
        caller gives it back, or its lease expires)."""
        return _Overlapped(self, batches, store_threads).run()

    # ------------------------------------------------------------ before the pipeline

    def _prepare_batch(self, jobs: Sequence[Any]) -> _Batch:
        """Prepare each job of a claimed batch; those that fail end here, the rest are
        grouped by pipeline options."""
        batch = _Batch(list(jobs))
        ready: list[_Work] = []
        for job in jobs:
            work = _Work(job=job, started=time.perf_counter())
            failed = self._guard(work, "preparing", self._prepare)
            if failed is None:
                ready.append(work)
            else:
                batch.outcomes.append(failed)
        batch.groups = _group_by_pipeline_options(ready)
        return batch

    # ------------------------------------------------------------ before the pipeline

    def _prepare(self, work: _Work) -> None:
        self._read_request(work)
        data = self._fetch(work)
        self._decode(work, data)
        self._find_faces(work)
        self._read_latent(work)

    def _read_request(self, work: _Work) -> None:
        """The job's options and edit variants, its attributes checked against the models."""
        job = work.job
        work.options = JobOptions.from_options(job.options)
        edits = [EditSpec.from_dict(e) for e in job.edits]
        work.variants = expand_variants(edits)
        for spec in edits:
            self.pipeline.bundle.check_attribute(spec.attribute)

    def _fetch(self, work: _Work) -> bytes:
        with self._timed(work, "fetch"):
            return self.fetch(work.job.input_uri)

    def _decode(self, work: _Work, data: bytes) -> None:
        job = work.job
        with self._timed(work, "decode"):
            decoded = decode_image(
                data, min_side=self.min_side, max_pixels=self.max_pixels,
                name=job.input_name or job.input_uri,
            )  # fmt: skip
        work.sha256 = decoded.sha256
        work.faces = FaceInputs(decoded.pixels, [decoded.pixels])
        self._progress([job.id], "decode")

    def _find_faces(self, work: _Work) -> None:
        """Align the photo's faces when the job asks for it (``align`` option)."""
        size = self._output_size(work.job)
        if work.options.align != "never":
            with self._timed(work, "align"):
                work.faces = prepare_faces(work.faces.photo, work.options, size)
        self._progress([work.job.id], "align")

    def _read_latent(self, work: _Work) -> None:
        """A stored W+ code to edit from (``latent`` option), checked against the models."""
        if work.options.latent is None:
            return
        from shared.core.errors import ModelUnavailable
        from shared.editing.latents import check_latent, decode_latent

        bundle = self.pipeline.bundle
        if not hasattr(bundle, "style_dim"):
            raise ModelUnavailable("latent: these models (null pipeline) have no W+ space")
        name = work.options.latent
        stored = decode_latent(self.fetch(name, limit=LATENT_MAX_BYTES), name)
        check_latent(stored, len(work.faces.images), bundle.n_latent, bundle.style_dim, name)
        work.latent = stored.w

    def fetch(self, uri: str, limit: int | None = None) -> bytes:
        """The bytes at ``uri``: a storage object, or a local file for the embedded runtime."""
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
        return self.storage.get(self.storage.key_from_uri(uri))

    def _output_size(self, job: Any) -> int:
        config = PipelineConfig.from_options(job.options.get("pipeline"))
        return int(config.output_size or self.pipeline.bundle.output_size)

    # ------------------------------------------------------------ the pipeline

    def _run_model(self, group: list[_Work], batch: _Batch) -> PipelineResult | None:
        """One pipeline call for jobs with the same pipeline options: one image per face.
        The output, or None when the call ended the group's jobs (their outcomes are added
        to ``batch``)."""
        try:
            config = PipelineConfig.from_options(group[0].job.options.get("pipeline"))
            pipeline = self.pipeline.with_config(config)
            plan = _BatchPlan(group)
            images = to_batch(plan.images, pipeline.output_size)
            timings: dict[str, float] = {}
            output = pipeline.run(
                images, plan.variants, latents=plan.latents,
                on_stage=self._stage_listener([w.job.id for w in group], timings),
            )  # fmt: skip
        except JobCancelled:
            batch.outcomes.extend(self._outcome(w, "cancelled") for w in group)
            return None
        except FaceditError as exc:
            batch.outcomes.extend(self._end(w, exc) for w in group)
            return None
        except Exception as exc:  # noqa: BLE001 - a batch must fail, never the worker
            log.exception("pipeline failed for %d job(s)", len(group))
            batch.outcomes.extend(
                self._fail(w, "internal_error", f"{type(exc).__name__}: {exc}") for w in group
            )
            return None
        for work in group:
            work.stages.update(timings)
        return output

    def _finish_guarded(self, work: _Work, output: PipelineResult) -> JobOutcome:
        return self._guard(work, "storing the result of", lambda w: self._finish(w, output))

    def _stage_listener(
        self, job_ids: list[str], timings: dict[str, float]
    ) -> Callable[[str], None]:
        """Writes progress after each stage and stops the batch once all its jobs are cancelled.

        Jobs cancelled while others in the batch go on are dropped when results are stored.
        ``timings`` receives the seconds each stage took (its own bookkeeping excluded).
        """
        last = [time.perf_counter()]

        def on_stage(stage: str) -> None:
            timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - last[0]
            cancelled = self._cancelled_among(job_ids)
            live = [job_id for job_id in job_ids if job_id not in cancelled]
            if not live:
                raise JobCancelled(f"all {len(job_ids)} job(s) of the batch were cancelled")
            self._progress(live, stage)
            last[0] = time.perf_counter()

        return on_stage

    # ------------------------------------------------------------ after the pipeline

    def _finish(self, work: _Work, output: PipelineResult) -> JobOutcome:
        """Store the job's results (``work.items`` says which items of ``output`` are its),
        then record the state."""
        job = work.job
        if self._cancelled(job.id):
            return self._outcome(work, "cancelled")
        with self._timed(work, "store"):
            results = [
                self._store_variant(work, k, [items[k] for items in work.items], output)
                for k in range(len(work.variants))
            ]
            latent_uri = self._store_latent(work, output.latents)
        won = self.store.succeed(
            job.id, results[0]["uri"], results[0]["intermediates"], input_sha256=work.sha256,
            metrics={"stages": work.stages, "batch_size": len(output.result)},
            outputs=results, latent_uri=latent_uri, suppressor=output.suppressor or None,
        )  # fmt: skip
        if not won:
            return self._outcome(work, "cancelled")
        return self._outcome(work, "succeeded", output_uri=results[0]["uri"],
                             stages=dict(work.stages))

    def _store_variant(
        self, work: _Work, k: int, items: list[int], output: PipelineResult
    ) -> dict[str, Any]:
        """Paste back, encode and store variant ``k`` (its items: one per face)."""
        from shared.core.storage import output_key

        job, options = work.job, work.options
        count = len(work.variants)
        pasted_back = work.faces.crops is not None  # only then are the masks needed
        final = assemble(
            work.faces,
            [to_uint8(output.result[i]) for i in items],
            [to_uint8(output.mask[i]) for i in items] if pasted_back else [],
        )
        name = _object_name("result", k, count, options.format)
        uri = self._put(
            work, output_key(job.batch_id, job.id, name),
            encode_image(final, options.format, quality=options.quality), options.content_type,
        )
        intermediates = {}
        if (job.options.get("pipeline") or {}).get("intermediates"):
            for name, tensor in output.intermediates().items():
                intermediates[name] = self._put(
                    work, output_key(job.batch_id, job.id, _object_name(name, k, count, "png")),
                    encode_image(to_uint8(tensor[items[0]]), "png"), "image/png",
                )
        variant = work.variants[k]
        return {"label": variant_label(variant), "edits": [e.to_dict() for e in variant],
                "uri": uri, "intermediates": intermediates}

    def _store_latent(self, work: _Work, latents: Any) -> str | None:
        """The job's W+ codes (one per face), with ``save_latents``."""
        if not work.options.save_latents or latents is None:
            return None
        from shared.core.storage import output_key
        from shared.editing.latents import encode_latent

        codes = latents[work.images]
        data = encode_latent(codes, work.sha256, self.pipeline.bundle.fingerprint)
        return self._put(work, output_key(work.job.batch_id, work.job.id, "latent.pt"), data,
                         "application/octet-stream")

    def _put(self, work: _Work, key: str, data: bytes, content_type: str) -> str:
        """Store one object (logged: a fault test counts that each is written once).

        A job that ran before (a worker died, or the database went down before its state was
        recorded) may already have stored it: the stored object is kept, not written again.
        """
        job = work.job
        if (job.attempts > 1 or job.retries > 0) and self.storage.exists(key):
            log.info("kept %s (stored by an earlier attempt)", key)
            return self.storage.uri(key)
        uri = self.storage.put(key, data, content_type=content_type)
        log.info("stored %s", key)
        return uri

    # ------------------------------------------------------------ outcomes

    def _guard(self, work: _Work, doing: str, step: Callable[[_Work], Any]) -> Any:
        """Run ``step``; a problem ends this job only (see the module docstring)."""
        try:
            return step(work)
        except FaceditError as exc:
            return self._end(work, exc)
        except Exception as exc:  # noqa: BLE001 - a job must fail, never the worker
            log.exception("%s job %s failed", doing, work.job.id)
            return self._fail(work, "internal_error", f"{type(exc).__name__}: {exc}")

    def _end(self, work: _Work, exc: FaceditError) -> JobOutcome:
        """Fail the job, or — the error is transient: storage, database or broker down —
        put it back in the queue after a backoff, until the retry budget is spent."""
        if not exc.transient:
            return self._fail(work, exc.code, exc.message)
        log.warning("job %s: %s (%s); retrying later", work.job.id, exc.code, exc.message)
        status = self.store.postpone(
            work.job.id, exc.code, exc.message, first_delay_s=self.transient_retry_seconds,
            budget_s=self.transient_retry_budget_seconds,
        )  # fmt: skip
        status = "queued" if status is None else str(getattr(status, "value", status))
        return self._outcome(work, status, error_code=exc.code, error_message=exc.message)

    def _fail(self, work: _Work, code: str, message: str) -> JobOutcome:
        status = "failed"
        if not self.store.fail(work.job.id, code, message):
            # No longer queued or running: cancelled meanwhile (the outcome says so, the job
            # is not this runner's failure), or this very failure was recorded just before a
            # dropped connection.
            try:
                job = self.store.get_job(work.job.id)
            except DatabaseUnavailable:
                job = None
            if job is not None:
                status = str(getattr(job.status, "value", job.status))
        return self._outcome(work, status, error_code=code, error_message=message)

    def _outcome(self, work: _Work, status: str, **kwargs: Any) -> JobOutcome:
        return JobOutcome(work.job.id, status, time.perf_counter() - work.started, **kwargs)

    # ------------------------------------------------------------ bookkeeping

    def _progress(self, job_ids: Sequence[str], step: str) -> None:
        """Best effort: a progress update the database cannot take is skipped."""
        fraction = PROGRESS.get(step, 0.0)
        try:
            self.store.set_progress_many(job_ids, fraction, step)  # one statement per batch
        except DatabaseUnavailable as exc:
            log.warning("progress of %d job(s) not recorded: %s", len(job_ids), exc.message)
        if self.on_progress is not None:
            self.on_progress(job_ids, fraction)

    def _cancelled_among(self, job_ids: Sequence[str]) -> set[str]:
        """Which of the jobs were cancelled (one query); none when the database cannot tell."""
        try:
            return self.store.cancelled_among(job_ids)
        except DatabaseUnavailable:
            return set()

    def _cancelled(self, job_id: str) -> bool:
        """Whether the job was cancelled; when the database cannot tell, go on (the final
        conditional UPDATE still keeps a cancelled job cancelled)."""
        try:
            return self.store.is_cancelled(job_id)
        except DatabaseUnavailable:
            return False

    @contextmanager
    def _timed(self, work: _Work, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            work.stages[step] = work.stages.get(step, 0.0) + time.perf_counter() - started


@dataclass
class _Batch:
    """A claimed batch on its way through the runner: its jobs, the outcomes so far, and
    the prepared jobs grouped by pipeline options."""

    jobs: list[Any]
    outcomes: list[JobOutcome] = field(default_factory=list)
    groups: list[list[_Work]] = field(default_factory=list)

    def ordered(self) -> list[JobOutcome]:
        order = {job.id: i for i, job in enumerate(self.jobs)}
        return sorted(self.outcomes, key=lambda o: order[o.job_id])


class _Overlapped:
    """:meth:`JobRunner.process_batches`: three stages joined by bounded hand-overs —
    prefetch thread (claim, fetch, decode, align: one batch ahead) → this thread (the
    model) → store threads (encode, store, state: at most one batch behind)."""

    _DONE = object()

    def __init__(self, runner: JobRunner, batches: Iterable[Sequence[Any]],
                 store_threads: int) -> None:
        self.runner = runner
        self.batches = batches
        self.store_threads = max(1, store_threads)
        self.prepared: queue.Queue[Any] = queue.Queue(maxsize=1)
        self.stopping = threading.Event()

    def run(self) -> Iterator[list[JobOutcome]]:
        prefetch = threading.Thread(target=self._prefetch, name="facedit-prefetch", daemon=True)
        stores = ThreadPoolExecutor(self.store_threads, thread_name_prefix="facedit-store")
        behind: deque[tuple[_Batch, list[Future[JobOutcome]]]] = deque()
        prefetch.start()
        try:
            while (batch := self._next_prepared()) is not None:
                futures = []
                for group in batch.groups:
                    output = self.runner._run_model(group, batch)
                    if output is not None:
                        futures.extend(stores.submit(self.runner._finish_guarded, work, output)
                                       for work in group)
                behind.append((batch, futures))
                # At most one batch is still being stored while the next one runs.
                while len(behind) > 1 or (behind and all(f.done() for f in behind[0][1])):
                    yield self._collect(*behind.popleft())
            while behind:
                yield self._collect(*behind.popleft())
        finally:
            self.stopping.set()
            stores.shutdown(wait=True)  # a result being stored is stored and recorded
            prefetch.join()

    def _next_prepared(self) -> _Batch | None:
        item = self.prepared.get()
        if item is self._DONE:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def _prefetch(self) -> None:
        try:
            for jobs in self.batches:
                if self.stopping.is_set():
                    return
                if jobs:
                    self._hand_over(self.runner._prepare_batch(jobs))
        except BaseException as exc:  # noqa: BLE001 - raised again in the model thread
            self._hand_over(exc)
        finally:
            self._hand_over(self._DONE)

    def _hand_over(self, item: Any) -> None:
        while not self.stopping.is_set():
            try:
                self.prepared.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    @staticmethod
    def _collect(batch: _Batch, futures: list[Future[JobOutcome]]) -> list[JobOutcome]:
        batch.outcomes.extend(future.result() for future in futures)
        return batch.ordered()


class _BatchPlan:
    """The pipeline's input for a group of jobs: one image per distinct input face, with the
    variants of every job that edits it, so jobs on the same photo (several requests for one
    input) share its inversion and reconstruction. Sets each job's ``images`` (its faces'
    image indices) and ``items`` (per face, the output item of each of its variants)."""

    def __init__(self, group: list[_Work]) -> None:
        self.images: list[Any] = []  # np.ndarray per pipeline image
        self.variants: list[list[tuple[EditSpec, ...]]] = []
        self.latents: list[Any] = []
        slots: list[list[tuple[_Work, int, int]]] = []  # per image: (work, face, first k)
        seen: dict[tuple, int] = {}
        for work in group:
            work.images, work.items = [], [[] for _ in work.faces.images]
            for face, image in enumerate(work.faces.images):
                key = self._key(work, face)
                index = seen.get(key) if key is not None else None
                if index is None:
                    index = len(self.images)
                    self.images.append(image)
                    self.variants.append([])
                    self.latents.append(None if work.latent is None else work.latent[face])
                    slots.append([])
                    if key is not None:
                        seen[key] = index
                work.images.append(index)
                slots[index].append((work, face, len(self.variants[index])))
                self.variants[index].extend(work.variants)
        first_item = 0
        for index, entries in enumerate(slots):
            for work, face, offset in entries:
                start = first_item + offset
                work.items[face] = list(range(start, start + len(work.variants)))
            first_item += len(self.variants[index])

    @staticmethod
    def _key(work: _Work, face: int) -> tuple | None:
        """Jobs whose face ``face`` is the same picture: the same input bytes, found the same
        way; a job editing from a stored latent shares nothing."""
        if work.latent is not None or work.sha256 is None:
            return None
        options = work.options
        return (work.sha256, face, options.align, options.all_faces, options.detector)


def _object_name(name: str, k: int, count: int, ext: str) -> str:
    """``result.png`` for a single result; ``result.3.png`` for a sweep's fourth step."""
    return f"{name}.{ext}" if count == 1 else f"{name}.{k}.{ext}"


def _group_by_pipeline_options(works: list[_Work]) -> list[list[_Work]]:
    """Jobs with identical pipeline options run as one batch."""
    groups: dict[str, list[_Work]] = {}
    for work in works:
        key = json.dumps(work.job.options.get("pipeline") or {}, sort_keys=True)
        groups.setdefault(key, []).append(work)
    return list(groups.values())
