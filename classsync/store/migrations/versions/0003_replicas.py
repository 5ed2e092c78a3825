"""Add "ClasssyncReplica": live `classsync serve` processes, so replicas share QBO's per-realm budget.

Revision ID: 0003_replicas
Revises: 0002_classsync_tables
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision: str = "0003_replicas"
down_revision: str | Sequence[str] | None = "0002_classsync_tables"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MYSQL = ("mysql", "mariadb")


def _timestamp() -> sa.types.TypeEngine[object]:
    return (
        sa.DateTime()
        .with_variant(postgresql.TIMESTAMP(precision=3), "postgresql")
        .with_variant(mysql.DATETIME(fsp=3), *_MYSQL)
    )


def _now() -> sa.TextClause:
    if op.get_bind().dialect.name == "mysql":
        return sa.text("CURRENT_TIMESTAMP(3)")
    return sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    """Create the replica registry."""
    op.create_table(
        "ClasssyncReplica",
        sa.Column("replicaId", sa.Text().with_variant(sa.String(191), *_MYSQL), nullable=False),
        sa.Column("heartbeatAt", _timestamp(), nullable=False),
        sa.Column("startedAt", _timestamp(), nullable=False, server_default=_now()),
        sa.PrimaryKeyConstraint("replicaId", name="ClasssyncReplica_pkey"),
    )


def downgrade() -> None:
    """Drop the replica registry."""
    op.drop_table("ClasssyncReplica")
