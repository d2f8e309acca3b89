"""api/deps.py: the typed dependencies the routes take — the app's context (``Context``), the
owner of the request's API key (``Owner``), its rate limits (``RateLimits``), the
Idempotency-Key header (``IdempotencyKey``)."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute

from api.deps import Context, IdempotencyKey, Owner, RateLimits, current_owner
from api.errors import install_error_handlers
from api.ratelimit import RateLimiter
from shared.core.config import Settings
from shared.jobs import ApiKeys, JobStore
from tests.integration.service.conftest import ApiServer


def test_a_route_gets_its_context_owner_and_idempotency_key(sqlite_store: JobStore) -> None:
    keys = ApiKeys(sqlite_store)
    alice = keys.create("alice")[1]
    app = FastAPI()
    install_error_handlers(app)
    unlimited = Settings(rate_limit_requests_per_second=0, rate_limit_images_per_minute=0)
    app.state.context = SimpleNamespace(keys=keys, limiter=RateLimiter(unlimited))

    @app.post("/probe")
    def probe(
        owner: Owner, ctx: Context, limits: RateLimits, idempotency_key: IdempotencyKey = None
    ) -> dict:
        return {"owner": owner, "key": idempotency_key, "context": ctx is app.state.context,
                "limits": limits.key_id == keys.list("alice")[0].id}

    with ApiServer(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        auth = {"Authorization": f"Bearer {alice}"}
        assert client.post("/probe", headers=auth).json() == {
            "owner": "alice", "key": None, "context": True, "limits": True,
        }
        answer = client.post("/probe", headers={**auth, "Idempotency-Key": "k-1"})
        assert answer.json()["key"] == "k-1"
        refused = client.post("/probe", headers={"Idempotency-Key": "k-1"})
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
        assert refused.json()["error"]["code"] == "missing_api_key"
        # The key is the bearer security scheme, not a parameter: only Idempotency-Key is.
        operation = client.get("/openapi.json").json()["paths"]["/probe"]["post"]
    assert [(p["name"], p["in"], p["required"]) for p in operation["parameters"]] == [
        ("idempotency-key", "header", False)
    ]
    assert operation["security"] == [{"ApiKey": []}]


def _calls(dependant: Any) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def test_every_v1_route_needs_an_api_key() -> None:
    from api.routes import batches, jobs, system, uploads

    routes = [
        route for module in (jobs, batches, uploads, system) for route in module.router.routes
        if isinstance(route, APIRoute) and route.path.startswith("/v1")
    ]  # fmt: skip
    assert len(routes) == 11
    for route in routes:
        assert current_owner in set(_calls(route.dependant)), route.path
