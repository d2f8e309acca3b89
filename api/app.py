"""The facedit HTTP API (FastAPI). No torch here: work reaches the GPU workers as Celery
messages sent by task name, and what the models offer comes from the workers' catalog.

Run it with ``facedit api`` (uvicorn, factory ``api.app:create_app``); OpenAPI docs at
``/docs``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.context import build_context
from api.errors import install_error_handlers
from api.limits import BodySizeLimit
from api.openapi import errors, install_openapi
from api.ratelimit import RateLimitHeaders
from api.routes import batches, jobs, system, uploads
from shared.core.config import Settings, get_settings

DESCRIPTION = """Batch face-attribute editing as a job system.

Upload inputs with `POST /v1/uploads` (a presigned S3 POST form, its size bounded by S3),
submit jobs or batches that reference them, poll the job or batch, and download results
from the presigned URLs in the answers. Every request needs `Authorization: Bearer <api
key>` (`facedit keys create`). Errors are `{"error": {"code": ..., "message": ...}}`.

`GET /v1/jobs` and `GET /v1/batches` list the key owner's jobs and batches, newest first, in
pages joined by `next_cursor`. Each API key is rate limited (requests per second, images
queued per minute): 429 `rate_limited` with `Retry-After`, and every `/v1` answer carries the
RateLimit fields of draft-ietf-httpapi-ratelimit-headers-06.
"""

# Statuses a router's routes answer that only that router's routes do (api/openapi.py adds
# the common ones).
ROUTER_ERRORS = {
    uploads: errors({501: "`uploads_unsupported`: the service stores files locally (file://)"}),
}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    context = build_context(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        context.close()

    app = FastAPI(
        title="facedit",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.context = context
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(RateLimitHeaders)
    for module in (jobs, batches, uploads, system):
        app.include_router(module.router, responses=ROUTER_ERRORS.get(module))
    install_openapi(app)
    return app
