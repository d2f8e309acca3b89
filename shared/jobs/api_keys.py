"""API keys: created, listed and revoked by operators (``facedit keys``), checked by the API.

A key reads ``fdk_<id>_<secret>``; only the SHA-256 of the whole key is stored, so a
leaked database does not leak usable keys. Keys carry 256 bits of randomness, so a plain
hash (no salt, no slow KDF) is enough: there is nothing to brute-force.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, or_, select, update

from shared.jobs.records import ApiKeyRecord, from_row
from shared.jobs.store import JobStore
from shared.jobs.tables import ApiKey

KEY_PREFIX = "fdk_"
_KEY_RE = re.compile(r"fdk_([0-9a-f]{12})_[A-Za-z0-9_-]{43}")
_OWNER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,254}")
# last_used_at is refreshed at most this often, so authentication stays a read.
_TOUCH_INTERVAL = timedelta(minutes=1)

api_keys_table = ApiKey.__table__


def hash_key(key: str) -> str:
    """The stored form of a key: SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def looks_like_key(text: str) -> bool:
    """Whether ``text`` has the shape of a facedit API key."""
    return isinstance(text, str) and _KEY_RE.fullmatch(text) is not None


class ApiKeys:
    """CRUD for the ``api_keys`` table of a (migrated) job store; every statement runs in the
    store's transactions (:meth:`shared.jobs.db.Database.transaction`)."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.db = store.db

    def create(self, owner: str, name: str | None = None) -> tuple[ApiKeyRecord, str]:
        """A new key for ``owner``: its record and the key itself (shown once, never stored)."""
        if not isinstance(owner, str) or not _OWNER_RE.fullmatch(owner):
            raise ValueError(
                f"owner must be 1-255 characters of letters, digits and _.@- starting with a "
                f"letter or digit, got {owner!r}"
            )
        if name is not None and (not isinstance(name, str) or not 0 < len(name) <= 255):
            raise ValueError(f"name must be a string of 1-255 characters or None, got {name!r}")
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        row = {
            "id": key_id,
            "owner": owner,
            "name": name,
            "key_hash": hash_key(key),
            "prefix": key[: len(KEY_PREFIX) + len(key_id)],
            "created_at": datetime.now(UTC),
            "revoked_at": None,
            "last_used_at": None,
        }
        with self.db.transaction(write=True) as connection:
            connection.execute(insert(api_keys_table), row)
        return _record(row), key

    def list(self, owner: str | None = None, include_revoked: bool = True) -> list[ApiKeyRecord]:
        """Keys, oldest first, optionally of one owner and without the revoked ones."""
        query = select(api_keys_table).order_by(api_keys_table.c.created_at, api_keys_table.c.id)
        if owner is not None:
            query = query.where(api_keys_table.c.owner == owner)
        if not include_revoked:
            query = query.where(api_keys_table.c.revoked_at.is_(None))
        with self.db.transaction(write=False) as connection:
            return [_record(row._mapping) for row in connection.execute(query)]

    def get(self, key_id: str) -> ApiKeyRecord | None:
        with self.db.transaction(write=False) as connection:
            row = connection.execute(
                select(api_keys_table).where(api_keys_table.c.id == key_id)
            ).first()
        return None if row is None else _record(row._mapping)

    def revoke(self, key_id: str) -> bool:
        """Revoke a key (by id or by the key itself); False if there is no such live key."""
        if looks_like_key(key_id):
            key_id = key_id[len(KEY_PREFIX) : len(KEY_PREFIX) + 12]
        with self.db.transaction(write=True) as connection:
            result = connection.execute(
                update(api_keys_table)
                .where(api_keys_table.c.id == key_id, api_keys_table.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
        return result.rowcount == 1

    def authenticate(self, key: str) -> ApiKeyRecord | None:
        """The record of ``key`` (revoked ones included: the caller says why it refuses),
        or None for a key that does not exist."""
        if not looks_like_key(key):
            return None
        with self.db.transaction(write=False) as connection:
            row = connection.execute(
                select(api_keys_table).where(api_keys_table.c.key_hash == hash_key(key))
            ).first()
        if row is None:
            return None
        record = _record(row._mapping)
        if not record.revoked:
            self._touch(record)
        return record

    def _touch(self, record: ApiKeyRecord) -> None:
        now = datetime.now(UTC)
        if record.last_used_at is not None and now - record.last_used_at < _TOUCH_INTERVAL:
            return
        with self.db.transaction(write=True) as connection:
            connection.execute(
                update(api_keys_table)
                .where(
                    api_keys_table.c.id == record.id,
                    or_(
                        api_keys_table.c.last_used_at.is_(None),
                        api_keys_table.c.last_used_at < now - _TOUCH_INTERVAL,
                    ),
                )
                .values(last_used_at=now)
            )


def _record(row: Any) -> ApiKeyRecord:
    return from_row(ApiKeyRecord, row)
