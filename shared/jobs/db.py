"""The database: engine creation and tuning, transactions, migrations, transient errors.

Every statement of shared/jobs runs inside :meth:`Database.transaction`, which holds the
rules of each backend:

- SQLite: WAL journal, a 30 s busy timeout, and write transactions that start with
  ``BEGIN IMMEDIATE`` — one writer at a time, waiting up to the busy timeout, instead of a
  deferred read that fails with "database is locked" when it upgrades to a write;
- PostgreSQL: ``pool_pre_ping`` (connections that died with a restart are replaced), and
  migrations serialised by an advisory lock.

A database that cannot be reached — down, restarting, a connection dropped mid-transaction —
surfaces as :class:`~shared.core.errors.DatabaseUnavailable` (transient, code
``database_unavailable``), never as a driver exception; :func:`survives_disconnects` retries an
operation whose connection died on a fresh one.

Migrations are Alembic's (``migrations/versions``); :meth:`Database.migrate` runs them.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError
from sqlalchemy.pool import StaticPool

from shared.core.errors import DatabaseUnavailable

if TYPE_CHECKING:
    from alembic.config import Config

P = ParamSpec("P")
T = TypeVar("T")
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Worth retrying a whole task: the database is unreachable, restarting or busy.
TRANSIENT_DATABASE_ERRORS: tuple[type[Exception], ...] = (
    DatabaseUnavailable, OperationalError, InterfaceError,
)
RECONNECT_DELAYS_S = (0.1, 0.5, 1.5)  # retries of an operation whose connection died
# pg_advisory_xact_lock key serialising concurrent migrate() calls ("facedit" in ASCII).
_MIGRATION_LOCK_KEY = 0x66616365646974
_SQLITE_BUSY_TIMEOUT_MS = 30_000


class Database:
    """One SQLite or PostgreSQL database: its engine and its transactions."""

    def __init__(self, database_url: str) -> None:
        self.url = _normalise_url(database_url)
        self.dialect = self.url.get_backend_name()
        self.engine = _make_engine(self.url)

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    @contextmanager
    def transaction(self, write: bool) -> Iterator[Connection]:
        """A connection in a transaction, committed when the block ends (rolled back if it
        raises). ``write=True`` for anything that may write: on SQLite it begins with
        ``BEGIN IMMEDIATE``."""
        try:
            with self.engine.connect() as connection:
                if write and self.dialect == "sqlite":
                    connection = connection.execution_options(facedit_sqlite_begin="IMMEDIATE")
                with connection.begin():
                    yield connection
        except (OperationalError, InterfaceError) as exc:
            raise DatabaseUnavailable(
                f"the job database is unavailable: {_first_line(exc)}",
                disconnected=bool(getattr(exc, "connection_invalidated", False)),
            ) from exc

    def close(self) -> None:
        """Close pooled connections (the database stays usable; new ones open on demand)."""
        self.engine.dispose()

    def forget_connections(self) -> None:
        """In a process forked from the one that opened them: drop the inherited pooled
        connections without closing them (they belong to the parent)."""
        self.engine.dispose(close=False)

    # -- migrations ---------------------------------------------------------------------

    def migrate(self) -> str | None:
        """Upgrade the schema to the newest revision; return it. Safe to call repeatedly
        and, on PostgreSQL, from several processes at once (advisory lock)."""
        from alembic import command

        with self.migration_connection() as connection:
            command.upgrade(_alembic_config(connection), "head")
        return self.current_revision()

    def current_revision(self) -> str | None:
        """The schema revision the database is at (None before the first migration)."""
        from alembic.runtime.migration import MigrationContext

        with self.transaction(write=False) as connection:
            return MigrationContext.configure(connection).get_current_revision()

    @staticmethod
    def head_revision() -> str | None:
        """The newest revision shipped with this code."""
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(_alembic_config()).get_current_head()

    @contextmanager
    def migration_connection(self) -> Iterator[Connection]:
        """A write transaction that no other migration runs beside (Alembic's env.py runs
        on it)."""
        with self.transaction(write=True) as connection:
            if self.dialect == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            yield connection


def survives_disconnects(operation: Callable[P, T]) -> Callable[P, T]:
    """Run ``operation`` again (up to 3 times, short pauses) when its connection died —
    e.g. PostgreSQL terminated the backend — and the database is reachable again. Only for
    operations that are safe to repeat: the store's conditional UPDATEs and reads."""

    @functools.wraps(operation)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        for delay in (*RECONNECT_DELAYS_S, None):
            try:
                return operation(*args, **kwargs)
            except DatabaseUnavailable as exc:
                if delay is None or not exc.disconnected:
                    raise
                time.sleep(delay)
        raise AssertionError("unreachable")

    return wrapper


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300]


def _alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


# -- engines ------------------------------------------------------------------------------


def _normalise_url(database_url: str) -> URL:
    if not isinstance(database_url, str) or not database_url:
        raise ValueError(f"database_url must be a non-empty URL string, got {database_url!r}")
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise ValueError(f"database_url {database_url!r} is not a database URL") from exc
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(
            f"database_url {url.render_as_string(hide_password=True)!r}: only sqlite:// and "
            "postgresql:// databases are supported"
        )
    return url


def _make_engine(url: URL) -> Engine:
    if url.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True)
    database = url.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if not in_memory and not url.query.get("uri"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {
        "connect_args": {"check_same_thread": False, "timeout": _SQLITE_BUSY_TIMEOUT_MS / 1000}
    }
    if in_memory:
        # One shared connection keeps an in-memory database alive (for tests and tools).
        options["poolclass"] = StaticPool
    engine = create_engine(url, **options)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is always DEFERRED).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _use_wal(cursor: Any) -> None:
    """Switch the database file to WAL (a persistent setting). Switching needs an exclusive
    lock and SQLite answers "database is locked" at once, without its busy handler, while
    another connection holds one — e.g. several processes opening a new database together —
    so wait and retry up to the busy timeout."""
    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            mode = cursor.execute("PRAGMA journal_mode").fetchone()[0].lower()
            if mode not in ("wal", "memory"):  # an in-memory database has no file to switch
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_on_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get("facedit_sqlite_begin", "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")
