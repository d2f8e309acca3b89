"""``Authorization: Bearer <key>`` → the key's owner, which scopes every query."""

from __future__ import annotations

from fastapi import Depends, Request

from api.context import ApiContext, get_context
from api.errors import ApiError

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def current_owner(request: Request, ctx: ApiContext = Depends(get_context)) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise ApiError(
            401, "missing_api_key", "send the header Authorization: Bearer <api key>", _CHALLENGE
        )
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401, "invalid_api_key", "the Authorization header must be 'Bearer <api key>'",
            _CHALLENGE,
        )  # fmt: skip
    record = ctx.keys.authenticate(token)
    if record is None:
        raise ApiError(401, "invalid_api_key", "the API key is not valid", _CHALLENGE)
    if record.revoked:
        raise ApiError(401, "api_key_revoked", f"API key {record.id} was revoked", _CHALLENGE)
    return record.owner
