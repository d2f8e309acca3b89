"""API keys: the ``Authorization`` header → the key's owner, or a 401 that says why."""

from __future__ import annotations

from api.errors import ApiError
from shared.jobs import ApiKeyRecord, ApiKeys

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def authenticate(header: str | None, keys: ApiKeys) -> str:
    """The owner of the key in ``header`` (``Bearer <key>``); ApiError 401 ``missing_api_key``,
    ``invalid_api_key`` or ``api_key_revoked`` otherwise."""
    return authenticate_key(header, keys).owner


def authenticate_key(header: str | None, keys: ApiKeys) -> ApiKeyRecord:
    """The live API key in ``header`` (its id scopes the rate limits, its owner every
    query); ApiError 401 as :func:`authenticate`."""
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
    record = keys.authenticate(token)
    if record is None:
        raise ApiError(401, "invalid_api_key", "the API key is not valid", _CHALLENGE)
    if record.revoked:
        raise ApiError(401, "api_key_revoked", f"API key {record.id} was revoked", _CHALLENGE)
    return record
