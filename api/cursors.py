"""The listings' cursors and time filters (GET /v1/jobs, GET /v1/batches).

A cursor is opaque to clients: the (created_at, id) of the last row of a page, as URL-safe
base64 of a small JSON document. It only says where to continue — every query stays scoped to
the caller's key, so a cursor is no capability.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from api.errors import ApiError
from shared.jobs.queries import Position

CREATED_AFTER = "only those created at or after this time (ISO 8601; UTC when it has no zone)"
CREATED_BEFORE = "only those created before this time (ISO 8601; UTC when it has no zone)"


@dataclass(frozen=True)
class PageRequest:
    """What a listing request asks for: a period (UTC, checked), where to continue, how many."""

    created_after: datetime | None
    created_before: datetime | None
    position: Position | None
    limit: int


def encode_cursor(position: Position | None) -> str | None:
    if position is None:
        return None
    created_at, row_id = position
    document = {"t": created_at.astimezone(UTC).isoformat(), "id": row_id}
    text = json.dumps(document, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Position | None:
    """The position in ``cursor``; ApiError 422 ``invalid_request`` for anything that is not
    a cursor this API handed out."""
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        document = json.loads(text)
        created_at = datetime.fromisoformat(document["t"])
        row_id = document["id"]
        if created_at.tzinfo is None or not isinstance(row_id, str) or not row_id:
            raise ValueError("incomplete cursor")
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise ApiError(
            422, "invalid_request", "cursor: not a cursor from a previous page's next_cursor"
        ) from exc
    return created_at, row_id


def as_utc(value: datetime | None) -> datetime | None:
    """A time filter as an aware UTC datetime (one without a timezone is taken as UTC)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def check_period(created_after: datetime | None, created_before: datetime | None) -> None:
    if created_after is not None and created_before is not None and created_after > created_before:
        raise ApiError(
            422, "invalid_request", "created_after: later than created_before"
        )
