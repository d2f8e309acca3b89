"""shared/jobs/runner.py with the null pipeline (decode, resize, encode): the runner the Celery
task and the CLI share, on a SQLite store and local storage."""

from __future__ import annotations

import io
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def faces(faces_256: list[Path]) -> list[Path]:
    """Three of the 256² development faces."""
    return faces_256[:3]


def test_null_pipeline_runs_jobs_through_the_job_runner(tmp_path: Path, faces: list[Path]) -> None:
    import numpy as np
    from PIL import Image

    from shared.core.storage import LocalStorage
    from shared.editing.null_pipeline import NullPipeline
    from shared.jobs import JobStatus, JobStore, NewJob
    from shared.jobs.runner import JobRunner

    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    store.migrate()
    storage = LocalStorage(tmp_path / "storage")
    inputs = [storage.put(f"inputs/{p.name}", p.read_bytes()) for p in faces]
    edits = [{"attribute": "smile", "strength": 1.0}]
    options = {"pipeline": {"output_size": 128}}
    batch = store.create_batch(
        [NewJob(uri, edits, options) for uri in inputs]
        + [NewJob(inputs[0], [{"attribute": "moustache", "strength": 1.0}], options)]
    )
    runner = JobRunner(store, storage, NullPipeline(), worker_id="test")
    outcomes = runner.run(batch.job_ids)
    assert [o.status for o in outcomes] == ["succeeded"] * 3 + ["failed"]
    assert outcomes[-1].error_code == "invalid_edit_request"
    for path, outcome in zip(faces, outcomes[:3], strict=True):
        result = Image.open(io.BytesIO(storage.get(storage.key_from_uri(outcome.output_uri))))
        expected = Image.open(path).convert("RGB").resize((128, 128), Image.Resampling.BOX)
        diff = np.abs(np.asarray(result, int) - np.asarray(expected, int))
        assert result.size == (128, 128) and diff.mean() < 3
        job = store.get_job(outcome.job_id)
        assert job.status is JobStatus.SUCCEEDED and job.metrics["batch_size"] == 3
    store.close()


def _runner_setup(tmp_path: Path, faces: list[Path], storage_class: type, **runner_options):
    from shared.editing.null_pipeline import NullPipeline
    from shared.jobs import JobStore, NewJob
    from shared.jobs.runner import JobRunner

    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    store.migrate()
    storage = storage_class(tmp_path / "storage")
    inputs = [storage.put(f"inputs/{p.name}", p.read_bytes()) for p in faces]
    batch = store.create_batch(
        [NewJob(uri, [{"attribute": "smile", "strength": 1.0}], {"align": "never"})
         for uri in inputs]
    )
    runner = JobRunner(store, storage, NullPipeline(), worker_id="test", **runner_options)
    return store, storage, batch, runner


def test_a_storage_outage_postpones_jobs_without_using_attempts(tmp_path, faces) -> None:
    from shared.core.errors import StorageUnavailable
    from shared.core.storage import LocalStorage
    from shared.jobs import JobStatus

    class DownStorage(LocalStorage):
        down = False

        def get(self, key: str) -> bytes:
            if self.down:
                raise StorageUnavailable("S3 is down (injected)")
            return super().get(key)

    store, storage, batch, runner = _runner_setup(
        tmp_path, faces, DownStorage, transient_retry_seconds=30.0
    )
    storage.down = True
    outcomes = runner.run(batch.job_ids)
    assert [o.status for o in outcomes] == ["queued"] * 3
    assert {o.error_code for o in outcomes} == {"storage_unavailable"}
    for job_id in batch.job_ids:
        job = store.get_job(job_id)
        assert job.status == JobStatus.QUEUED and job.attempts == 0 and job.retries == 1
        assert job.not_before is not None
    assert store.due_jobs() == 0  # they wait out the backoff
    storage.down = False
    outcomes = runner.run(batch.job_ids)  # an explicit claim (the CLI's) does not wait
    assert [o.status for o in outcomes] == ["succeeded"] * 3
    store.close()


def test_a_database_hiccup_in_a_progress_update_does_not_end_the_job(
    tmp_path, faces, monkeypatch, caplog
) -> None:
    import logging

    from shared.core.errors import DatabaseUnavailable
    from shared.core.storage import LocalStorage

    store, storage, batch, runner = _runner_setup(tmp_path, faces, LocalStorage)

    def no_database(*args, **kwargs):
        raise DatabaseUnavailable("the job database is unavailable (injected)")

    monkeypatch.setattr(store, "set_progress", no_database)
    monkeypatch.setattr(store, "is_cancelled", no_database)
    with caplog.at_level(logging.INFO, logger="shared.jobs.runner"):
        outcomes = runner.run(batch.job_ids)
    assert [o.status for o in outcomes] == ["succeeded"] * 3
    stored = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stored ")]
    keys = [line.removeprefix("stored ") for line in stored]
    assert len(keys) == 3 and len(set(keys)) == 3  # one result each, written once
    assert all(storage.exists(key) for key in keys)
    store.close()


def test_a_job_run_again_keeps_what_an_earlier_attempt_stored(tmp_path, faces, caplog) -> None:
    """The earlier attempt stored the result but died before recording it: the next attempt
    keeps that object instead of writing it a second time."""
    import logging

    from shared.core.storage import LocalStorage, output_key

    store, storage, batch, runner = _runner_setup(tmp_path, faces[:1], LocalStorage)
    [job_id] = batch.job_ids
    assert store.claim(job_id, "dead-worker", 60) is not None
    store.release(job_id, "worker_error", "the worker died", worker_id="dead-worker")
    key = output_key(batch.id, job_id, "result.png")
    storage.put(key, b"stored by the first attempt")
    with caplog.at_level(logging.INFO, logger="shared.jobs.runner"):
        [outcome] = runner.run([job_id])
    assert outcome.status == "succeeded" and outcome.output_uri == storage.uri(key)
    assert storage.get(key) == b"stored by the first attempt"
    assert any(r.getMessage() == f"kept {key} (stored by an earlier attempt)"
               for r in caplog.records)
    assert not any(r.getMessage().startswith("stored ") for r in caplog.records)
    store.close()


def test_jobs_on_the_same_photo_share_one_inversion(tmp_path, faces, monkeypatch) -> None:
    """Three requests for one photo (two fixed edits and a sweep) and one for another photo,
    claimed together: two images are inverted, and each job gets what it gets alone."""
    import numpy as np
    from PIL import Image

    import shared.editing.pipeline as pipeline_module
    from shared.core.storage import LocalStorage
    from shared.editing.bundle import toy_bundle
    from shared.editing.pipeline import EditPipeline
    from shared.jobs import JobStore, NewJob
    from shared.jobs.runner import JobRunner

    inverted: list[int] = []
    original_invert = pipeline_module.invert

    def counting(encoder, images, size):
        inverted.append(images.shape[0])
        return original_invert(encoder, images, size)

    monkeypatch.setattr(pipeline_module, "invert", counting)
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    store.migrate()
    storage = LocalStorage(tmp_path / "storage")
    same, other = (storage.put(f"inputs/{p.name}", p.read_bytes()) for p in faces[:2])
    options = {"align": "never", "pipeline": {"suppressor": "naive"}}
    requests = [(same, [{"attribute": "smile", "strength": 2.0}]),
                (same, [{"attribute": "age", "strength": -1.0}]),
                (other, [{"attribute": "smile", "strength": 2.0}]),
                (same, [{"attribute": "pose", "sweep": {"start": -1, "end": 1, "steps": 3}}])]
    pipeline = EditPipeline(toy_bundle())
    runner = JobRunner(store, storage, pipeline, worker_id="test")

    def results(job_ids: list[str]) -> list[list[np.ndarray]]:
        found = []
        for job_id in job_ids:
            job = store.get_job(job_id)
            found.append([np.asarray(Image.open(storage.path(storage.key_from_uri(o["uri"]))),
                                     int) for o in job.outputs])
        return found

    together = store.create_batch([NewJob(uri, edits, options) for uri, edits in requests])
    assert [o.status for o in runner.run(together.job_ids)] == ["succeeded"] * 4
    assert inverted == [2]  # one inversion per distinct photo
    shared_results = results(list(together.job_ids))
    assert [len(r) for r in shared_results] == [1, 1, 1, 3]
    for (uri, edits), expected in zip(requests, shared_results, strict=True):
        alone = store.create_batch([NewJob(uri, edits, options)])
        runner.run(alone.job_ids)
        for a, b in zip(results(list(alone.job_ids))[0], expected, strict=True):
            assert np.abs(a - b).max() <= 1  # batch composition may move a rounding
    store.close()
