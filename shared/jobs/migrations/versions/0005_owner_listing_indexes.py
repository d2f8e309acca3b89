"""jobs, batches: (owner, created_at, id) indexes for the listings (GET /v1/jobs, /v1/batches)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-09 00:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_owner_created_at_id", "jobs", ["owner", "created_at", "id"])
    op.create_index("ix_batches_owner_created_at_id", "batches", ["owner", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_batches_owner_created_at_id", table_name="batches")
    op.drop_index("ix_jobs_owner_created_at_id", table_name="jobs")
