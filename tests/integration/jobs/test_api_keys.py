"""API keys: created, listed, revoked, authenticated; only their hash is stored, and their
writes run in the store's transactions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from shared.jobs import ApiKeys, JobStore
from shared.jobs.api_keys import api_keys_table, hash_key, looks_like_key
from tests.integration.jobs.helpers import statements, transactions


def test_create_and_authenticate(store: JobStore) -> None:
    keys = ApiKeys(store)
    record, key = keys.create("alice", name="laptop")
    assert looks_like_key(key) and key.startswith(record.prefix)
    assert (record.owner, record.name, record.revoked, record.last_used_at) == (
        "alice", "laptop", False, None,
    )  # fmt: skip
    assert not hasattr(record, "key_hash")
    with store.engine.connect() as connection:
        stored = connection.execute(api_keys_table.select()).one()
    assert stored.key_hash == hash_key(key) and key not in stored

    found = keys.authenticate(key)
    assert found is not None and found.id == record.id
    used = keys.get(record.id)
    assert used is not None and used.last_used_at is not None
    assert keys.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert keys.authenticate("not a key") is None


def test_last_use_is_written_at_most_once_a_minute(sqlite_store: JobStore) -> None:
    keys = ApiKeys(sqlite_store)
    record, key = keys.create("alice")
    keys.authenticate(key)
    with statements(sqlite_store) as sent:
        keys.authenticate(key)
    assert not any(s.startswith("UPDATE") for s in sent)  # authentication stays a read
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    with sqlite_store.engine.begin() as connection:
        connection.execute(update(api_keys_table).values(last_used_at=an_hour_ago))
    keys.authenticate(key)
    touched = keys.get(record.id)
    assert touched is not None and touched.last_used_at is not None
    assert touched.last_used_at > an_hour_ago


def test_list_and_revoke(store: JobStore) -> None:
    keys = ApiKeys(store)
    first, first_key = keys.create("alice")
    second, _ = keys.create("alice")
    bobs, _ = keys.create("bob")
    assert [k.id for k in keys.list()] == [first.id, second.id, bobs.id]
    assert [k.id for k in keys.list(owner="alice")] == [first.id, second.id]
    assert keys.revoke(first_key)  # by the key itself
    assert keys.revoke(second.id)  # or by id
    assert not keys.revoke(second.id) and not keys.revoke("0" * 12)
    assert [k.id for k in keys.list(owner="alice", include_revoked=False)] == []
    revoked = keys.authenticate(first_key)
    assert revoked is not None and revoked.revoked  # the caller says why it refuses


def test_bad_owners_and_names_are_refused(store: JobStore) -> None:
    keys = ApiKeys(store)
    for owner in ("", "-x", "a b", "x" * 256):
        with pytest.raises(ValueError, match="owner"):
            keys.create(owner)
    with pytest.raises(ValueError, match="name"):
        keys.create("alice", name="")
    assert keys.list() == []


def test_sqlite_writes_begin_immediate(sqlite_store: JobStore) -> None:
    keys = ApiKeys(sqlite_store)
    with statements(sqlite_store) as sent:
        record, key = keys.create("alice")
        keys.authenticate(key)  # the first use is written
        keys.revoke(record.id)
    found = transactions(sent)
    writing = [t[0] for t in found if any(s.startswith(("INSERT", "UPDATE")) for s in t)]
    assert writing == ["BEGIN IMMEDIATE"] * 3
