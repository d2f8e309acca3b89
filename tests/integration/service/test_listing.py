"""GET /v1/jobs and GET /v1/batches: the calling key owner's jobs and batches, newest first, in
keyset pages that stay correct while jobs are added; filters by status and time; owner
isolation."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.jobs import ApiKeys, NewJob
from tests.integration.service.conftest import Stack

EDITS = [{"attribute": "smile", "strength": 1.0}]
SIZES = (5, 1, 4, 3, 5, 2, 3)  # batches made straight in the store: 23 jobs


def _client(stack: Stack, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=stack.api_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )


class Owner:
    """A fresh owner with a key, batches of jobs made in the store (several jobs share a
    created_at: a batch's jobs are created together), and an upload to submit more with."""

    def __init__(self, stack: Stack, face: bytes) -> None:
        self.name = f"lister-{uuid.uuid4().hex[:10]}"
        self.key = ApiKeys(stack.store).create(self.name, "listing tests")[1]
        # Inputs that do not exist: the workers fail these jobs at once.
        self.missing = stack.storage.uri(f"missing/{uuid.uuid4().hex}.png")
        self.batches = [
            stack.store.create_batch(
                [NewJob(self.missing, EDITS) for _ in range(n)], owner=self.name
            )
            for n in SIZES
        ]
        self.job_ids = [job_id for batch in self.batches for job_id in batch.job_ids]
        with _client(stack, self.key) as client:
            self.face = stack.upload(client, face)

    def submit(self, client: httpx.Client) -> dict[str, Any]:
        answer = client.post("/v1/jobs", json={"input_key": self.face, "edits": ["smile=+1"]})
        assert answer.status_code == 202, answer.text
        return answer.json()


@pytest.fixture(scope="module")
def owner(stack: Stack, small_faces: list[Path]) -> Owner:
    return Owner(stack, small_faces[1].read_bytes())


def _pages(
    client: httpx.Client, path: str, rows: str, between: Any = None, **params: Any
) -> tuple[list[dict[str, Any]], int]:
    """Every row of a listing, following next_cursor; ``between()`` runs after each page."""
    seen: list[dict[str, Any]] = []
    cursor, pages = None, 0
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        answer = client.get(path, params=query)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        seen += page[rows]
        pages += 1
        if between is not None:
            between()
        cursor = page["next_cursor"]
        if cursor is None:
            return seen, pages
        assert len(page[rows]) == params["limit"]


def _ids(client: httpx.Client, path: str, rows: str) -> set[str]:
    answer = client.get(path, params={"limit": 1000})
    assert answer.status_code == 200 and answer.json()["next_cursor"] is None, answer.text
    return {row["id"] for row in answer.json()[rows]}


def _newest_first(rows: list[dict[str, Any]]) -> bool:
    keys = [(datetime.fromisoformat(r["created_at"]), r["id"]) for r in rows]
    return all(a > b for a, b in zip(keys, keys[1:], strict=False))


def test_paging_jobs_while_jobs_are_added_skips_and_repeats_nothing(
    stack: Stack, owner: Owner
) -> None:
    added: list[str] = []
    with _client(stack, owner.key) as client:
        before = _ids(client, "/v1/jobs", "jobs")
        seen, pages = _pages(
            client, "/v1/jobs", "jobs", limit=4,
            between=lambda: added.append(owner.submit(client)["id"]),
        )  # fmt: skip
        ids = [job["id"] for job in seen]
        assert len(ids) == len(set(ids)), "a job came twice"
        assert set(ids) == before, "jobs were skipped, or jobs added meanwhile came"
        assert set(owner.job_ids) <= before
        assert pages == -(-len(before) // 4)
        assert _newest_first(seen)

        # A new listing starts with what was added, newest first.
        everything = client.get("/v1/jobs", params={"limit": 1000}).json()
    assert everything["next_cursor"] is None
    assert [job["id"] for job in everything["jobs"][: len(added)]] == added[::-1]
    assert {job["id"] for job in everything["jobs"]} == before | set(added)
    assert _newest_first(everything["jobs"])


def test_paging_batches_while_batches_are_added(stack: Stack, owner: Owner) -> None:
    with _client(stack, owner.key) as client:
        before = _ids(client, "/v1/batches", "batches")
        seen, _ = _pages(
            client, "/v1/batches", "batches", limit=2, between=lambda: owner.submit(client)
        )
        ids = [batch["id"] for batch in seen]
        assert len(ids) == len(set(ids)) and set(ids) == before
        assert {batch.id for batch in owner.batches} <= before
        assert _newest_first(seen)
        sizes = {batch.id: len(batch.job_ids) for batch in owner.batches}
        for batch in seen:
            assert batch["total"] == sum(batch["counts"].values())
            if batch["id"] in sizes:
                assert batch["total"] == sizes[batch["id"]]
            assert set(batch) >= {"id", "created_at", "options", "counts", "done", "callback_url"}
            assert "jobs" not in batch and "owner" not in batch


def test_filters_by_status_and_time(stack: Stack, owner: Owner) -> None:
    with _client(stack, owner.key) as client:
        # A batch whose jobs are all cancelled is done; cancelled jobs stay cancelled. (The
        # workers wait meanwhile: they would fail these jobs at once.)
        with stack.paused():
            cancelled_batch = stack.store.create_batch(
                [NewJob(owner.missing, EDITS) for _ in range(3)], owner=owner.name
            )
            answer = client.post(f"/v1/batches/{cancelled_batch.id}/cancel")
        assert answer.status_code == 200 and answer.json()["cancelled"] == 3, answer.text
        cancelled = set(cancelled_batch.job_ids)
        listed = client.get("/v1/jobs", params={"status": "cancelled", "limit": 1000}).json()
        assert cancelled and cancelled <= {job["id"] for job in listed["jobs"]}
        assert all(job["status"] == "cancelled" for job in listed["jobs"])
        both = client.get(
            "/v1/jobs", params=[("status", "cancelled"), ("status", "failed"), ("limit", 1000)]
        ).json()["jobs"]
        assert {job["status"] for job in both} <= {"cancelled", "failed"}
        assert cancelled <= {job["id"] for job in both}

        done = client.get("/v1/batches", params={"status": "done", "limit": 1000}).json()
        assert cancelled_batch.id in {b["id"] for b in done["batches"]}
        assert all(b["done"] for b in done["batches"])
        running = client.get("/v1/batches", params={"status": "open", "limit": 1000}).json()
        assert not any(b["done"] for b in running["batches"])

        # created_after (included) and created_before (excluded) split the batches in two.
        cut = owner.batches[3].created_at
        older = client.get("/v1/batches", params={"created_before": cut.isoformat()}).json()
        newer = client.get(
            "/v1/batches",
            params={"created_after": cut.isoformat(), "created_before": _plus(cut, 1)},
        ).json()  # fmt: skip
        assert {b["id"] for b in older["batches"]} >= {b.id for b in owner.batches[:3]}
        assert owner.batches[3].id not in {b["id"] for b in older["batches"]}
        assert owner.batches[3].id in {b["id"] for b in newer["batches"]}
        jobs_older = client.get(
            "/v1/jobs", params={"created_before": cut.isoformat(), "limit": 1000}
        ).json()["jobs"]  # fmt: skip
        first_three = {j for b in owner.batches[:3] for j in b.job_ids}
        assert first_three <= {job["id"] for job in jobs_older}
        assert not set(owner.batches[3].job_ids) & {job["id"] for job in jobs_older}
        # A time without a zone is UTC.
        naive = cut.replace(tzinfo=None).isoformat()
        same = client.get("/v1/batches", params={"created_before": naive}).json()
        assert [b["id"] for b in same["batches"]] == [b["id"] for b in older["batches"]]

        for params in (
            {"cursor": "not-a-cursor"},
            {"limit": 0},
            {"limit": 1001},
            {"status": "finished"},
            {"created_after": "yesterday"},
            {"created_after": _plus(cut, 1), "created_before": cut.isoformat()},
        ):
            for path in ("/v1/jobs", "/v1/batches"):
                answer = client.get(path, params=params)
                assert answer.status_code == 422, (path, params, answer.text)
                assert answer.json()["error"]["code"] == "invalid_request", answer.text


def _plus(moment: datetime, seconds: float) -> str:
    return (moment + timedelta(seconds=seconds)).isoformat()


def test_listings_show_only_the_callers_own(stack: Stack, owner: Owner) -> None:
    with _client(stack, owner.key) as client:
        page = client.get("/v1/jobs", params={"limit": 2}).json()
        mine = _ids(client, "/v1/jobs", "jobs")
        my_batches = _ids(client, "/v1/batches", "batches")
    with stack.client("bob") as bob:
        theirs = bob.get("/v1/jobs", params={"limit": 1000}).json()["jobs"]
        assert not mine & {job["id"] for job in theirs}
        batches = bob.get("/v1/batches", params={"limit": 1000}).json()["batches"]
        assert not my_batches & {b["id"] for b in batches}
        # A cursor is a position, not a capability: bob continues with his own jobs.
        continued = bob.get("/v1/jobs", params={"cursor": page["next_cursor"]}).json()["jobs"]
        assert not mine & {job["id"] for job in continued}
    with stack.client(owner=None) as anonymous:
        assert anonymous.get("/v1/jobs").status_code == 401
