"""shared/jobs/runner.py with the null pipeline (decode, resize, encode): the runner the Celery
task and the CLI share, on a SQLite store and local storage."""

from __future__ import annotations

import io
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def faces(dev_faces: list[Path]) -> list[Path]:
    """Three of the 256² development faces."""
    from PIL import Image

    found = []
    for path in dev_faces:
        with Image.open(path) as image:
            if image.size == (256, 256):
                found.append(path)
    assert len(found) >= 3, f"expected at least 3 faces at 256², found {len(found)}"
    return found[:3]


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
