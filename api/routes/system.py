"""Health, readiness, Prometheus metrics and the attribute catalog."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from api.context import ApiContext
from api.deps import Context, Owner
from api.openapi import errors
from api.schemas import AttributesOut, ReadinessOut

router = APIRouter()


@router.get("/healthz", tags=["system"])
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


def _check_database(ctx: ApiContext) -> str:
    current, head = ctx.store.current_revision(), ctx.head_revision
    if current != head:
        return f"schema at revision {current}, the code needs {head}: run `facedit db upgrade`"
    return "ok"


def _check_broker(ctx: ApiContext) -> str:
    return "ok" if ctx.redis.ping() else "no answer to PING"


def _check_storage(ctx: ApiContext) -> str:
    ctx.storage.exists("readyz/probe")
    return "ok"


@router.get(
    "/readyz", tags=["system"], response_model=None,
    responses={
        200: {"model": ReadinessOut, "description": "ready: every check is ok"},
        503: {"model": ReadinessOut, "description": "not ready: the checks say what is wrong"},
    },
)  # fmt: skip
def readyz(ctx: Context) -> JSONResponse:
    """Readiness: the database (migrated), the broker and the storage answer."""
    checks: dict[str, str] = {}
    for name, check in (
        ("database", _check_database),
        ("broker", _check_broker),
        ("storage", _check_storage),
    ):
        try:
            checks[name] = check(ctx)
        except Exception as exc:  # noqa: BLE001 - report every failing dependency
            checks[name] = f"{type(exc).__name__}: {exc}"[:500]
    ready = all(value == "ok" for value in checks.values())
    body: dict[str, Any] = {"status": "ready" if ready else "not_ready", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get(
    "/metrics", tags=["system"], response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}},
              "description": "the Prometheus text format"},
        **errors({503: "`database_unavailable`; retry after `Retry-After` seconds"}),
    },
)  # fmt: skip
def metrics(ctx: Context) -> Response:
    """Prometheus metrics (see api/metrics.py)."""
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/v1/attributes", tags=["attributes"], response_model=AttributesOut,
    responses=errors({
        503: "`attributes_unavailable` (no worker has published its models' attributes yet) "
             "or `database_unavailable`; retry after `Retry-After` seconds",
    }),
)  # fmt: skip
def attributes(_: Owner, ctx: Context) -> dict[str, Any]:
    """The edits the workers' models offer, and the suppressors and activations."""
    return ctx.catalog.get().data
