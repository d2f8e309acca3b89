"""What routes depend on, as typed ``Annotated`` dependencies: a route names what it needs
(``ctx: Context``, ``owner: Owner``, ``idempotency_key: IdempotencyKey = None``) and FastAPI
provides it, once per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from api.auth import authenticate
from api.context import ApiContext


def get_context(request: Request) -> ApiContext:
    """The app's context, built once by :func:`api.app.create_app`."""
    return request.app.state.context


Context = Annotated[ApiContext, Depends(get_context)]


def current_owner(request: Request, ctx: Context) -> str:
    """The owner of the request's API key (``Authorization: Bearer <key>``); 401 without a
    valid one. The owner scopes every query."""
    return authenticate(request.headers.get("authorization"), ctx.keys)


Owner = Annotated[str, Depends(current_owner)]

# The ``Idempotency-Key`` header: the same key and body return the first answer again.
IdempotencyKey = Annotated[str | None, Header()]
