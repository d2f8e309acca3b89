"""Alembic migrations for the job store (run with ``JobStore.migrate()``)."""
