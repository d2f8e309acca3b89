"""``facedit db upgrade``: the job database's schema (Alembic migrations)."""

from __future__ import annotations

from facedit.cli.loaders import job_store
from facedit.cli.options import typer_app
from facedit.console import say

app = typer_app("Database schema.")


@app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (safe to run repeatedly and concurrently)."""
    with job_store() as store:
        revision = store.migrate()
    say(f"database at revision {revision}")
