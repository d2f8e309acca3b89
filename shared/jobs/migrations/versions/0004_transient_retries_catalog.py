"""jobs: transient retries (not before, count, until when); the workers' attribute catalog

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("jobs", sa.Column("not_before", TIMESTAMP, nullable=True))
    op.add_column(
        "jobs", sa.Column("retries", sa.Integer(), nullable=False, server_default=sa.text("0"))
    )
    op.add_column("jobs", sa.Column("retry_until", TIMESTAMP, nullable=True))
    op.create_table(
        "catalogs",
        sa.Column("queue", sa.String(255), nullable=False),
        sa.Column("document", JSON_TYPE, nullable=False),
        sa.Column("published_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("queue", name="pk_catalogs"),
    )


def downgrade() -> None:
    op.drop_table("catalogs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("retry_until")
        batch.drop_column("retries")
        batch.drop_column("not_before")
