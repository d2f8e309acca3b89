"""JobRunner.process_batches: I/O overlapped with the model stage (issue #16), on a SQLite
store and local storage. The same jobs give the same results and go through the same state
changes as when each batch runs step after step; the prefetch of batch N+1 really happens
while batch N is in the model; and a process killed while a batch's results are half stored
leaves every job to end exactly once when its lease expires and it runs again."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.core.storage import LocalStorage
from shared.jobs import JobStatus, JobStore, NewJob
from shared.jobs.runner import JobRunner

BATCH = 2


@pytest.fixture(scope="module")
def faces(faces_256: list[Path]) -> list[Path]:
    """Four of the 256² development faces."""
    return faces_256[:4]


class RecordingStore:
    """The real job store, with every state-changing call recorded per job (in call order)."""

    CALLS = ("claim", "set_progress", "succeed", "fail", "postpone", "release")

    def __init__(self, store: JobStore) -> None:
        self._store = store
        self.calls: dict[str, list[tuple]] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if name == "set_progress_many":  # one statement, recorded for each of its jobs
            def for_each(job_ids: list[str], *args: Any) -> Any:
                answer = attribute(job_ids, *args)
                with self._lock:
                    for job_id in job_ids:
                        self.calls.setdefault(job_id, []).append(("set_progress", *args))
                return answer

            return for_each
        if name not in self.CALLS:
            return attribute

        def recorded(job_id: str, *args: Any, **kwargs: Any) -> Any:
            answer = attribute(job_id, *args, **kwargs)
            # What the change is, without paths or ids (they differ between runs): the
            # progress and stage, the error code, whether the conditional UPDATE won.
            detail = {"set_progress": args[:2], "fail": args[:1], "postpone": args[:1],
                      "release": args[:1]}.get(name, ())
            step = (name, *detail, answer is not None and answer is not False)
            with self._lock:
                self.calls.setdefault(job_id, []).append(step)
            return answer

        return recorded


def _jobs(store: JobStore, storage: LocalStorage, faces: list[Path], tmp_path: Path) -> list[str]:
    """Seven requests: fixed edits, a sweep, two on the same photo, one undecodable input and
    one unknown attribute — in batches of two, so batches mix successes and failures."""
    inputs = [storage.put(f"inputs/{p.name}", p.read_bytes()) for p in faces]
    broken = storage.put("inputs/broken.png", b"not an image")
    options = {"align": "never", "pipeline": {"suppressor": "poisson"}}
    requests = [
        (inputs[0], [{"attribute": "smile", "strength": 2.0}]),
        (inputs[1], [{"attribute": "age", "strength": -1.0}]),
        (broken, [{"attribute": "smile", "strength": 1.0}]),
        (inputs[2], [{"attribute": "pose", "sweep": {"start": -1, "end": 1, "steps": 3}}]),
        (inputs[3], [{"attribute": "moustache", "strength": 1.0}]),
        (inputs[0], [{"attribute": "glasses", "strength": 1.5}]),
        (inputs[0], [{"attribute": "smile", "strength": 2.0}]),
    ]
    batch = store.create_batch([NewJob(uri, edits, options) for uri, edits in requests])
    return list(batch.job_ids)


def _run(tmp_path: Path, faces: list[Path], overlapped: bool) -> dict[str, Any]:
    from shared.editing.bundle import toy_bundle
    from shared.editing.pipeline import EditPipeline

    real = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    real.migrate()
    storage = LocalStorage(tmp_path / "storage")
    ids = _jobs(real, storage, faces, tmp_path)
    store = RecordingStore(real)
    runner = JobRunner(store, storage, EditPipeline(toy_bundle()), worker_id="w")
    chunks = [ids[i : i + BATCH] for i in range(0, len(ids), BATCH)]
    if overlapped:
        outcomes = [o for batch in runner.process_batches(runner.claim(c) for c in chunks)
                    for o in batch]
    else:
        outcomes = [o for chunk in chunks for o in runner.run(chunk)]
    rows = {job_id: real.get_job(job_id) for job_id in ids}
    files = {
        job_id: [storage.get(storage.key_from_uri(o["uri"])) for o in row.outputs]
        for job_id, row in rows.items()
    }
    found = {
        "order": [o.job_id for o in outcomes] == ids,
        "outcomes": [(o.status, o.error_code) for o in outcomes],
        "rows": [(r.status, r.error_code, r.progress, r.stage, len(r.outputs), r.attempts)
                 for r in rows.values()],
        "files": [files[job_id] for job_id in ids],
        "calls": [store.calls[job_id] for job_id in ids],
    }
    real.close()
    return found


def test_overlapped_batches_give_the_same_results_and_state_changes(tmp_path, faces) -> None:
    one_by_one = _run(tmp_path / "sequential", faces, overlapped=False)
    overlapped = _run(tmp_path / "overlapped", faces, overlapped=True)

    assert one_by_one["order"] and overlapped["order"]
    assert [s for s, _ in overlapped["outcomes"]] == [
        "succeeded", "succeeded", "failed", "succeeded", "failed", "succeeded", "succeeded"]
    assert overlapped["outcomes"] == one_by_one["outcomes"]
    assert overlapped["rows"] == one_by_one["rows"]
    assert overlapped["files"] == one_by_one["files"]  # bit-identical results
    assert overlapped["calls"] == one_by_one["calls"]  # the same transitions, in order
    assert overlapped["calls"][0][0] == ("claim", True)
    assert overlapped["calls"][0][-1] == ("succeed", True)


class TimedStorage(LocalStorage):
    """Local storage whose reads and writes take ``delay_s`` (as S3 requests would) and are
    logged with their times."""

    def __init__(self, root: Path, delay_s: float) -> None:
        super().__init__(root)
        self.delay_s = delay_s
        self.events: list[tuple[str, str, float, float]] = []

    def _timed(self, kind: str, key: str, call: Any) -> Any:
        started = time.monotonic()
        time.sleep(self.delay_s)
        answer = call()
        self.events.append((kind, key, started, time.monotonic()))
        return answer

    def get(self, key: str) -> bytes:
        return self._timed("get", key, lambda: super(TimedStorage, self).get(key))

    def put(self, key: str, data: bytes, content_type: str | None = None) -> str:
        return self._timed("put", key,
                           lambda: super(TimedStorage, self).put(key, data, content_type))


class TimedNullPipeline:
    """The null pipeline holding each batch (time.sleep, releasing the GIL), its model
    intervals logged."""

    def __init__(self, hold_s: float) -> None:
        from shared.editing.null_pipeline import NullPipeline

        self.inner = NullPipeline(hold_seconds_per_image=hold_s)
        self.bundle = self.inner.bundle
        self.intervals: list[tuple[float, float]] = []

    @property
    def output_size(self) -> int:
        return self.inner.output_size

    def with_config(self, config: Any) -> TimedNullPipeline:
        self.inner = self.inner.with_config(config)
        return self

    def run(self, images: Any, variants: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        answer = self.inner.run(images, variants, **kwargs)
        self.intervals.append((started, time.monotonic()))
        return answer


def test_the_next_batch_is_fetched_and_the_last_stored_while_the_model_runs(
    tmp_path, faces
) -> None:
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    store.migrate()
    storage = TimedStorage(tmp_path / "storage", delay_s=0.05)
    inputs = [storage.put(f"inputs/{i}.png", faces[i % len(faces)].read_bytes())
              for i in range(9)]
    ids = list(store.create_batch(
        [NewJob(uri, [{"attribute": "smile", "strength": 1.0}], {"align": "never"})
         for uri in inputs]).job_ids)  # fmt: skip
    pipeline = TimedNullPipeline(hold_s=0.1)  # 0.2 s per batch of two
    runner = JobRunner(store, storage, pipeline, worker_id="w")
    warm_up, ids = ids[0], ids[1:]  # first calls (imports, torch) would make batch 1 late
    assert [o.status for o in runner.run([warm_up])] == ["succeeded"]
    storage.events.clear()
    pipeline.intervals.clear()
    chunks = [ids[i : i + BATCH] for i in range(0, len(ids), BATCH)]

    outcomes = [o for batch in runner.process_batches(runner.claim(c) for c in chunks)
                for o in batch]

    assert [o.status for o in outcomes] == ["succeeded"] * 8
    assert len(pipeline.intervals) == 4

    models = pipeline.intervals  # (start, end) of batch 0, 1, 2, 3 in the model
    batch_of = {f"inputs/{1 + i}.png": i // BATCH for i in range(len(ids))}
    gets = [(batch_of[key], start) for kind, key, start, _ in storage.events if kind == "get"]
    puts = [(key, end) for kind, key, _, end in storage.events if kind == "put"]
    assert len(gets) == len(puts) == 8
    # Prefetch: every input of batch k is read before batch k-1 leaves the model (one step
    # after the other, it would be read only after batch k-1 was stored).
    for batch, start in gets:
        if batch > 0:
            assert start < models[batch - 1][1], (batch, start, models)
    # Stores behind the model: batch k+1 enters the model before batch k's results are all
    # written (one step after the other, they would all be written first).
    stored_by_batch: dict[int, float] = {}
    for key, end in puts:
        job = key.split("/")[2]
        batch = ids.index(job) // BATCH
        stored_by_batch[batch] = max(end, stored_by_batch.get(batch, 0.0))
    for batch in range(3):
        assert models[batch + 1][0] < stored_by_batch[batch], (batch, stored_by_batch, models)
    store.close()


# -- a process killed while a batch's results are half stored ---------------------------------

PUTS_BEFORE_DEATH = 3  # batch 1 stores 2 results; the death comes inside batch 2's stores


def _run_and_die(database: str, root: str, ids: list[str]) -> None:
    """In a child process: run the jobs in batches of two, overlapped; the process dies
    (os._exit, as a SIGKILL would) in the middle of storing a batch's results."""

    class DyingStorage(LocalStorage):
        puts = 0

        def put(self, key: str, data: bytes, content_type: str | None = None) -> str:
            uri = super().put(key, data, content_type)
            logging.getLogger("dying").warning("stored %s", key)
            DyingStorage.puts += 1
            if DyingStorage.puts == PUTS_BEFORE_DEATH:
                os._exit(137)
            return uri

    from shared.editing.null_pipeline import NullPipeline

    store = JobStore(database)
    runner = JobRunner(store, DyingStorage(Path(root)), NullPipeline(), worker_id="doomed",
                       lease_seconds=60)
    chunks = [ids[i : i + BATCH] for i in range(0, len(ids), BATCH)]
    # One store thread, so that the death comes at a known result.
    for _ in runner.process_batches((runner.claim(c) for c in chunks), store_threads=1):
        pass
    os._exit(0)


def test_a_process_killed_while_a_batch_is_half_stored_loses_and_doubles_nothing(
    tmp_path, faces, caplog
) -> None:
    database = f"sqlite:///{tmp_path / 'jobs.db'}"
    store = JobStore(database)
    store.migrate()
    storage = LocalStorage(tmp_path / "storage")
    inputs = [storage.put(f"inputs/{i}.png", faces[i].read_bytes()) for i in range(4)]
    options = {"align": "never", "pipeline": {"output_size": 64}}
    ids = list(store.create_batch(
        [NewJob(uri, [{"attribute": "smile", "strength": 1.0}], options)
         for uri in inputs]).job_ids)  # fmt: skip

    child = multiprocessing.get_context("spawn").Process(
        target=_run_and_die, args=(database, str(tmp_path / "storage"), ids))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == 137

    rows = [store.get_job(job_id) for job_id in ids]
    stored = {job_id for job_id in ids
              if any(info.key.split("/")[2] == job_id for info in storage.list("outputs/"))}
    assert len(stored) == PUTS_BEFORE_DEATH
    # Batch 1 was stored and recorded; batch 2 is half stored, and both its jobs are still
    # "running" for the dead process (no state recorded).
    assert [r.status for r in rows[:2]] == [JobStatus.SUCCEEDED] * 2
    assert all(r.status is JobStatus.RUNNING and r.worker_id == "doomed" for r in rows[2:])

    # The lease expires; the sweep requeues them; another worker runs them.
    requeued, failed = store.requeue_expired(datetime.now(UTC) + timedelta(seconds=61))
    assert (requeued, failed) == (2, 0)
    from shared.editing.null_pipeline import NullPipeline

    runner = JobRunner(store, storage, NullPipeline(), worker_id="survivor")
    with caplog.at_level(logging.INFO, logger="shared.jobs.runner"):
        again = [o for batch in runner.process_batches([runner.claim(ids[2:])]) for o in batch]
    assert [o.status for o in again] == ["succeeded"] * 2

    rows = [store.get_job(job_id) for job_id in ids]
    assert all(r.status is JobStatus.SUCCEEDED for r in rows)
    assert [r.attempts for r in rows] == [1, 1, 2, 2]
    messages = [r.getMessage() for r in caplog.records]
    half_stored = sorted(stored - set(ids[:2]))
    assert len(half_stored) == 1
    # The result stored before the death is kept, not written again; the other is written once.
    assert sum(m.startswith("kept ") and half_stored[0] in m for m in messages) == 1
    assert sum(m.startswith("stored ") for m in messages) == 1
    assert len(list(storage.list("outputs/"))) == 4
    store.close()
