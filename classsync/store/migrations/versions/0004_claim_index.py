"""Index the job claim's order (status, depth, nextAttemptAt) so a claim walks it and stops early.

Revision ID: 0004_claim_index
Revises: 0003_replicas
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004_claim_index"
down_revision: str | Sequence[str] | None = "0003_replicas"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the claim-order index."""
    op.create_index(
        "ClasssyncJob_status_depth_nextAttemptAt_idx",
        "ClasssyncJob",
        ["status", "depth", "nextAttemptAt"],
    )


def downgrade() -> None:
    """Drop the claim-order index."""
    op.drop_index("ClasssyncJob_status_depth_nextAttemptAt_idx", table_name="ClasssyncJob")
