"""Index the job claim inside one realm: ("status", "realmId", "depth", "nextAttemptAt").

The engine claims one realm at a time (sync/realm_rotation.py), and asks which realms have due
work once per poll. Without an index that leads with the realm, both read every due pending row
of every realm: with 13,001 pending jobs, 2.6 ms for each claim and 6.9 ms for the list of due
realms on PostgreSQL (docs/performance.md, "e. realms"). With it, a claim walks the realm's own
jobs in claim order and stops at its limit (0.03 ms), and the list skips from realm to realm
(1.4 ms for 102 realms, whatever the backlog). On MariaDB (about 14,000 pending jobs) the claim
went from 29-87 ms to under 0.5 ms, and the list, read from the index alone, from 41-74 ms to
5-18 ms.

MySQL and MariaDB cannot index TEXT without a prefix length, so ``"realmId"`` becomes
VARCHAR(191) there, as in ``"QBClass"`` (realm ids are 19 digits). Other databases keep TEXT.
Additive: the existing indexes stay (tools still claim across realms in the global order).

Revision ID: 0009_job_realm_claim_index
Revises: 0008_two_way
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_job_realm_claim_index"
down_revision: str | Sequence[str] | None = "0008_two_way"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEX = "ClasssyncJob_status_realmId_depth_nextAttemptAt_idx"


def _is_mysql() -> bool:
    return op.get_bind().dialect.name in ("mysql", "mariadb")


def upgrade() -> None:
    """Make the realm indexable on MySQL, then add the per-realm claim index."""
    if _is_mysql():
        op.alter_column(
            "ClasssyncJob",
            "realmId",
            existing_type=sa.Text(),
            type_=sa.String(191),
            existing_nullable=False,
            nullable=False,
        )
    op.create_index(_INDEX, "ClasssyncJob", ["status", "realmId", "depth", "nextAttemptAt"])


def downgrade() -> None:
    """Drop the index (and give MySQL its TEXT column back)."""
    op.drop_index(_INDEX, table_name="ClasssyncJob")
    if _is_mysql():
        op.alter_column(
            "ClasssyncJob",
            "realmId",
            existing_type=sa.String(191),
            type_=sa.Text(),
            existing_nullable=False,
            nullable=False,
        )
