"""jobs: every result of a job (sweeps), its stored W+ code, the suppressor that ran

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # plain ADD COLUMN (no table copy on SQLite): existing rows get an empty list
    op.add_column(
        "jobs", sa.Column("outputs", JSON_TYPE, nullable=False, server_default=sa.text("'[]'"))
    )
    op.add_column("jobs", sa.Column("latent_uri", sa.Text(), nullable=True))
    op.add_column("jobs", sa.Column("suppressor", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("suppressor")
        batch.drop_column("latent_uri")
        batch.drop_column("outputs")
