"""The attribute catalog: published by the workers (workers/catalog.py), read by the API
(api/catalog.py), one document (shared/core/catalog.py)."""

from __future__ import annotations

import httpx

from shared.core.catalog import PublishedCatalog
from tests.integration.service.conftest import ApiServer, Stack


def test_attributes_come_from_the_workers_catalog(stack: Stack) -> None:
    with stack.client() as client:
        answer = client.get("/v1/attributes")
    assert answer.status_code == 200, answer.text
    catalog = answer.json()
    assert catalog["models"] == stack.settings.models
    assert {"smile", "age", "pose", "glasses"} <= set(catalog["names"])
    assert {a["name"] for a in catalog["attributes"]} <= set(catalog["names"])
    assert "poisson" in catalog["suppressors"] and "feature_diff" in catalog["activations"]


def test_attributes_are_the_published_document_without_its_writer(stack: Stack) -> None:
    published = PublishedCatalog.model_validate(stack.store.read_catalog(stack.settings.queue))
    assert published.version == 1 and published.worker
    with stack.client() as client:
        answer = client.get("/v1/attributes").json()
    # Two workers publish (last writer wins) and the API caches: compare what they share.
    answer.pop("published_at")
    assert answer == published.model_dump(mode="json",
                                          exclude={"version", "worker", "published_at"})


def test_submissions_wait_for_a_worker_catalog(stack: Stack, small_faces) -> None:
    from api.app import create_app

    settings = stack.settings.model_copy(update={"queue": "no-workers-yet"})
    headers = {"Authorization": f"Bearer {stack.keys['alice']}"}
    with stack.client() as real:
        key = stack.upload(real, small_faces[0].read_bytes())
    with ApiServer(create_app(settings)) as url, httpx.Client(
        base_url=url, headers=headers, timeout=30
    ) as client:
        for answer in (
            client.get("/v1/attributes"),
            client.post("/v1/jobs", json={"input_key": key, "edits": ["smile=+1"]}),
        ):
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == "attributes_unavailable"
            assert answer.headers["Retry-After"] == "10"
