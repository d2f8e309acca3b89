"""What routes depend on, as typed ``Annotated`` dependencies: a route names what it needs
(``ctx: Context``, ``owner: Owner``, ``limits: RateLimits``, ``idempotency_key: IdempotencyKey =
None``) and FastAPI provides it, once per request."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import authenticate_key
from api.context import ApiContext
from api.cursors import (
    CREATED_AFTER,
    CREATED_BEFORE,
    PageRequest,
    as_utc,
    check_period,
    decode_cursor,
)
from api.ratelimit import STATE_KEY, KeyLimits


def get_context(request: Request) -> ApiContext:
    """The app's context, built once by :func:`api.app.create_app`."""
    return request.app.state.context


Context = Annotated[ApiContext, Depends(get_context)]

# Declares the bearer scheme in the OpenAPI document (each /v1 operation lists it as its
# security requirement); the header itself is read by current_owner, which says precisely
# what is wrong with it.
bearer_scheme = HTTPBearer(
    scheme_name="ApiKey",
    bearerFormat="facedit API key",
    description="`Authorization: Bearer <api key>`; keys come from `facedit keys create`.",
    auto_error=False,
)


def current_owner(
    request: Request,
    ctx: Context,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> str:
    """The owner of the request's API key (``Authorization: Bearer <key>``); 401 without a
    valid one. The owner scopes every query. The request counts against the key's rate
    limit (429 past it; api/ratelimit.py)."""
    key = authenticate_key(request.headers.get("authorization"), ctx.keys)
    limits = KeyLimits(ctx.limiter, key.id)
    setattr(request.state, STATE_KEY, limits)
    limits.spend_request()
    return key.owner


Owner = Annotated[str, Depends(current_owner)]


def key_limits(request: Request, _: Owner) -> KeyLimits:
    """The rate limits of the request's API key, for routes that also spend images."""
    return getattr(request.state, STATE_KEY)


RateLimits = Annotated[KeyLimits, Depends(key_limits)]

# The ``Idempotency-Key`` header: the same key and body return the first answer again.
IdempotencyKey = Annotated[str | None, Header()]


def page_request(
    created_after: Annotated[datetime | None, Query(description=CREATED_AFTER)] = None,
    created_before: Annotated[datetime | None, Query(description=CREATED_BEFORE)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        str | None, Query(max_length=512, description="the previous page's next_cursor")
    ] = None,
) -> PageRequest:
    """The query parameters every listing (GET /v1/jobs, /v1/batches) shares, checked."""
    after, before = as_utc(created_after), as_utc(created_before)
    check_period(after, before)
    return PageRequest(after, before, decode_cursor(cursor), limit)


ListingPage = Annotated[PageRequest, Depends(page_request)]
