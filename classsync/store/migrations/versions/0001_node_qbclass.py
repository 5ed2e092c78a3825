"""The Node service's "QBClass" table: created exactly as Prisma does, or adopted as it is.

A database the Node service (Prisma) created already holds "QBClass", perhaps with rows, other
tables and a Postgres enum "SyncStatus". This revision then changes nothing: it only records that
classsync now manages the database. On an empty database it creates the table with Prisma's DDL
(same types, defaults and constraint/index names), so both kinds of database end up identical.

Offline SQL (`alembic upgrade --sql`) always creates the table: it is meant for empty databases.
Downgrade drops "QBClass" only when it is empty: data the Node service wrote is never destroyed
by a schema tool.

Revision ID: 0001_node_qbclass
Revises:
Create Date: 2025-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import mysql, postgresql

revision: str = "0001_node_qbclass"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MYSQL = ("mysql", "mariadb")


def _uuid() -> sa.types.TypeEngine[str]:
    return sa.Uuid(as_uuid=False).with_variant(sa.CHAR(36), *_MYSQL, "sqlite")


def _timestamp() -> sa.types.TypeEngine[object]:
    return (
        sa.DateTime()
        .with_variant(postgresql.TIMESTAMP(precision=3), "postgresql")
        .with_variant(mysql.DATETIME(fsp=3), *_MYSQL)
    )


def _now() -> sa.TextClause:
    # MySQL wants the default's precision to match DATETIME(3); MariaDB accepts both.
    if op.get_bind().dialect.name == "mysql":
        return sa.text("CURRENT_TIMESTAMP(3)")
    return sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    """Create "QBClass" like Prisma unless the Node service already did."""
    # Offline (`alembic upgrade --sql`) there is nothing to inspect: the script is for an
    # empty database.
    if not context.is_offline_mode() and sa.inspect(op.get_bind()).has_table("QBClass"):
        return
    op.create_table(
        "QBClass",
        sa.Column("id", _uuid(), nullable=False),
        # MySQL cannot put a unique index on TEXT: VARCHAR there, TEXT like Prisma elsewhere.
        sa.Column("qbId", sa.Text().with_variant(sa.String(191), *_MYSQL), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("fullName", sa.Text(), nullable=True),
        sa.Column("isSubClass", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("isActive", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("domainSource", sa.Text(), nullable=True),
        sa.Column("versionToken", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("isSparse", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("createdAt", _timestamp(), nullable=False, server_default=_now()),
        # Prisma's @updatedAt: no database default, the client always sets it.
        sa.Column("updatedAt", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="QBClass_pkey"),
    )
    op.create_index("QBClass_qbId_key", "QBClass", ["qbId"], unique=True)


def downgrade() -> None:
    """Drop "QBClass" if it holds no rows; otherwise leave the Node data in place."""
    if not context.is_offline_mode():
        qbclass = sa.table("QBClass", sa.column("id"))
        count = sa.select(sa.func.count()).select_from(qbclass)
        if op.get_bind().execute(count).scalar_one():
            return
    op.drop_index("QBClass_qbId_key", table_name="QBClass")
    op.drop_table("QBClass")
