"""Alembic environment: runs on the connection that ``Database.migrate`` hands over.

Run from the command line, ``alembic -c shared/jobs/migrations/alembic.ini upgrade head``
reads the database URL from ``FACEDIT_DATABASE_URL`` (or the embedded default).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from shared.jobs.tables import Base


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return

    from shared.core.config import get_settings
    from shared.jobs.db import Database

    database = Database(get_settings().database_url)
    try:
        with database.migration_connection() as connection:
            run_on(connection)
    finally:
        database.close()


if context.is_offline_mode():
    raise SystemExit("facedit migrations run online only (Database.migrate)")
run_online()
