"""Adopt the Node data and add classsync's own column and tables (all additive).

1. ``"qbId" = ''`` becomes NULL: the Node service stored empty strings for "no QBO Id", which
   would make every such row collide on the unique index and look like a QBO Id.
2. ``"QBClass"."fullNameKey"`` (nullable, unique index ``QBClass_fullNameKey_key``): the QBO-form
   path ``A:B:C``, identity of a Class without a qbId. Existing rows are backfilled from
   ``fullName`` (``A:B`` or ``A / B``), or from ``name`` when ``fullName`` is empty; rows in
   ``createdAt, id`` order, and a row whose key is already taken (or unusable: an empty level,
   longer than 512 characters) keeps NULL.
3. ``"ClasssyncJob"`` (the outbox, one row per Class) and ``"ClasssyncRealm"`` (OAuth tokens).

Existing rows get NO job: the Node service already pushed them to QBO, and a row without a qbId
has no realm id we could enqueue it under. They are picked up when a caller sends them again, or
by `classsync adopt` (given the realm), which queues every row with no qbId and no job.

Revision ID: 0002_classsync_tables
Revises: 0001_node_qbclass
Create Date: 2025-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import mysql, postgresql

from classsync.domain import join_path, split_full_name

revision: str = "0002_classsync_tables"
down_revision: str | Sequence[str] | None = "0001_node_qbclass"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MYSQL = ("mysql", "mariadb")
_FULL_NAME_KEY_LENGTH = 512


def _uuid() -> sa.types.TypeEngine[str]:
    return sa.Uuid(as_uuid=False).with_variant(sa.CHAR(36), *_MYSQL, "sqlite")


def _timestamp() -> sa.types.TypeEngine[object]:
    return (
        sa.DateTime()
        .with_variant(postgresql.TIMESTAMP(precision=3), "postgresql")
        .with_variant(mysql.DATETIME(fsp=3), *_MYSQL)
    )


def _text(mysql_length: int) -> sa.types.TypeEngine[str]:
    # MySQL cannot index or key TEXT without a prefix length: VARCHAR there, TEXT elsewhere.
    return sa.Text().with_variant(sa.String(mysql_length), *_MYSQL)


def _now() -> sa.TextClause:
    if op.get_bind().dialect.name == "mysql":
        return sa.text("CURRENT_TIMESTAMP(3)")
    return sa.text("CURRENT_TIMESTAMP")


def _key_for(name: str | None, full_name: str | None) -> str | None:
    path = split_full_name(full_name or "") or ((name or "").strip(),)
    if not all(path):
        return None
    key = join_path(path)
    return key if len(key) <= _FULL_NAME_KEY_LENGTH else None


def _backfill_full_name_keys() -> None:
    bind = op.get_bind()
    qbclass = sa.table(
        "QBClass",
        sa.column("id"),
        sa.column("name"),
        sa.column("fullName"),
        sa.column("createdAt"),
        sa.column("fullNameKey"),
    )
    rows = bind.execute(
        sa.select(qbclass.c.id, qbclass.c.name, qbclass.c.fullName).order_by(
            qbclass.c.createdAt, qbclass.c.id
        )
    ).all()
    taken: set[str] = set()
    updates: list[dict[str, object]] = []
    for row_id, name, full_name in rows:
        key = _key_for(name, full_name)
        if key is None or key in taken:
            continue
        taken.add(key)
        updates.append({"row_id": row_id, "key": key})
    if updates:
        bind.execute(
            qbclass.update()
            .where(qbclass.c.id == sa.bindparam("row_id"))
            .values(fullNameKey=sa.bindparam("key")),
            updates,
        )


def upgrade() -> None:
    """Clean the Node data, add fullNameKey, create the outbox and realm tables."""
    qbclass = sa.table("QBClass", sa.column("qbId"))
    op.execute(qbclass.update().where(qbclass.c.qbId == "").values(qbId=None))

    # MySQL: compared byte for byte, like PostgreSQL and SQLite (see 0006, which case-folds it).
    key_type = sa.Text().with_variant(
        sa.String(_FULL_NAME_KEY_LENGTH, collation="utf8mb4_bin"), *_MYSQL
    )
    op.add_column("QBClass", sa.Column("fullNameKey", key_type, nullable=True))
    if not context.is_offline_mode():  # offline SQL is for empty databases: nothing to fill
        _backfill_full_name_keys()
    op.create_index("QBClass_fullNameKey_key", "QBClass", ["fullNameKey"], unique=True)

    op.create_table(
        "ClasssyncJob",
        sa.Column("classId", _uuid(), nullable=False),
        sa.Column("realmId", sa.Text(), nullable=False),
        sa.Column("status", _text(32), nullable=False, server_default=sa.text("'PENDING'")),
        sa.Column("generation", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.Column("depth", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("nextAttemptAt", _timestamp(), nullable=False, server_default=_now()),
        sa.Column("leaseOwner", sa.Text(), nullable=True),
        sa.Column("leaseExpiresAt", _timestamp(), nullable=True),
        sa.Column("outcomeUnknown", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("lastErrorCode", sa.Text(), nullable=True),
        sa.Column("lastErrorMessage", sa.Text(), nullable=True),
        sa.Column("syncedAt", _timestamp(), nullable=True),
        sa.Column("createdAt", _timestamp(), nullable=False, server_default=_now()),
        sa.Column("updatedAt", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("classId", name="ClasssyncJob_pkey"),
        sa.ForeignKeyConstraint(
            ["classId"],
            ["QBClass.id"],
            name="ClasssyncJob_classId_fkey",
            ondelete="CASCADE",
            # Prisma's default for a relation; keeps the DDL equal to schema.prisma's.
            onupdate="CASCADE",
        ),
    )
    op.create_index(
        "ClasssyncJob_status_nextAttemptAt_idx", "ClasssyncJob", ["status", "nextAttemptAt"]
    )

    op.create_table(
        "ClasssyncRealm",
        sa.Column("realmId", _text(191), nullable=False),
        sa.Column("accessToken", sa.Text(), nullable=True),
        sa.Column("accessTokenExpiresAt", _timestamp(), nullable=True),
        sa.Column("refreshToken", sa.Text(), nullable=True),
        sa.Column("refreshTokenExpiresAt", _timestamp(), nullable=True),
        sa.Column("status", _text(32), nullable=False, server_default=sa.text("'CONNECTED'")),
        sa.Column("statusMessage", sa.Text(), nullable=True),
        sa.Column("createdAt", _timestamp(), nullable=False, server_default=_now()),
        sa.Column("updatedAt", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("realmId", name="ClasssyncRealm_pkey"),
    )


def downgrade() -> None:
    """Drop classsync's tables and column; the '' qbIds stay NULL (they meant "none")."""
    op.drop_table("ClasssyncRealm")
    op.drop_index("ClasssyncJob_status_nextAttemptAt_idx", table_name="ClasssyncJob")
    op.drop_table("ClasssyncJob")
    op.drop_index("QBClass_fullNameKey_key", table_name="QBClass")
    with op.batch_alter_table("QBClass") as batch:
        batch.drop_column("fullNameKey")
