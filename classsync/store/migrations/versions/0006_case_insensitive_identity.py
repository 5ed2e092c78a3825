"""Store identity keys case-folded, so names differing only in case are one Class everywhere.

QBO holds one class for "Marketing" and "marketing" (docs/qbo.md, "The Class entity"), but the
unique index on ``"QBClass"."fullNameKey"`` compared keys as the database's collation does:
exactly on PostgreSQL and SQLite, case- and accent-insensitively on MariaDB/MySQL. From here on
the key is ``identity_key`` (QBO form, case-folded) and MariaDB/MySQL compare it byte for byte
(``utf8mb4_bin``), so all three databases agree.

Existing keys are case-folded. Rows whose keys now collide (two rows for one QBO class) are all
kept with every value they hold; one of them keeps the key: the one linked to QBO (a qbId),
else the oldest (``createdAt, id``). The others lose only their key (NULL: no longer found by
name, like the Node rows 0002 could not key) and, unless already synced, their job ends
``FAILED`` with ``DUPLICATE_NAME`` naming the row that kept the key. A key longer than the
column once case-folded becomes NULL too.

Revision ID: 0006_case_insensitive_identity
Revises: 0004_claim_index
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from classsync.domain import ErrorCode, join_path, split_full_name

revision: str = "0006_case_insensitive_identity"
down_revision: str | Sequence[str] | None = "0004_claim_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MYSQL = ("mysql", "mariadb")
_KEY_LENGTH = 512
_QBCLASS = sa.table(
    "QBClass",
    sa.column("id"),
    sa.column("qbId"),
    sa.column("name"),
    sa.column("fullName"),
    sa.column("fullNameKey"),
    sa.column("createdAt"),
)
_JOB = sa.table(
    "ClasssyncJob",
    sa.column("classId"),
    sa.column("status"),
    sa.column("leaseOwner"),
    sa.column("leaseExpiresAt"),
    sa.column("lastErrorCode"),
    sa.column("lastErrorMessage"),
    sa.column("updatedAt"),
)


def _set_key_collation(collation: str | None) -> None:
    if op.get_bind().dialect.name not in _MYSQL:
        return
    suffix = f" COLLATE {collation}" if collation else ""
    op.execute(
        f"ALTER TABLE `QBClass` MODIFY `fullNameKey` VARCHAR({_KEY_LENGTH}){suffix} NULL"
    )


def _plan(rows: Sequence[Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """New keys of the rows that keep one, and for each row that loses its key, the keeper."""
    groups: dict[str, list[Any]] = {}
    for row in rows:
        groups.setdefault(row.fullNameKey.casefold(), []).append(row)
    keep: dict[str, str] = {}
    dropped: dict[str, Any] = {}
    for key, members in groups.items():
        keeper = next((r for r in members if r.qbId), members[0])
        if len(key) > _KEY_LENGTH:
            dropped.update((r.id, None) for r in members)
            continue
        keep[keeper.id] = key
        dropped.update((r.id, keeper) for r in members if r is not keeper)
    return keep, dropped


def _fail_dropped_jobs(dropped: dict[str, Any]) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    failures = [
        {
            "b_id": row_id,
            "b_message": (
                f"names differ only in case from local Class {keeper.id} "
                f"({keeper.fullName or keeper.name!r}), which is the same QBO class and keeps "
                "the name; this row keeps its values but is no longer matched by name"
            ),
            "b_now": now,
        }
        for row_id, keeper in dropped.items()
        if keeper is not None
    ]
    if not failures:
        return
    op.get_bind().execute(
        _JOB.update()
        .where(_JOB.c.classId == sa.bindparam("b_id"), _JOB.c.status != "SYNCED")
        .values(
            status="FAILED",
            leaseOwner=None,
            leaseExpiresAt=None,
            lastErrorCode=ErrorCode.DUPLICATE_NAME.value,
            lastErrorMessage=sa.bindparam("b_message"),
            updatedAt=sa.bindparam("b_now"),
        ),
        failures,
    )


def _write_keys(keys: dict[str, str | None]) -> None:
    if keys:
        op.get_bind().execute(
            _QBCLASS.update()
            .where(_QBCLASS.c.id == sa.bindparam("b_id"))
            .values(fullNameKey=sa.bindparam("b_key")),
            [{"b_id": row_id, "b_key": key} for row_id, key in keys.items()],
        )


def _case_fold_keys() -> None:
    rows = op.get_bind().execute(
        sa.select(_QBCLASS)
        .where(_QBCLASS.c.fullNameKey.is_not(None))
        .order_by(_QBCLASS.c.createdAt, _QBCLASS.c.id)
    ).all()
    keep, dropped = _plan(rows)
    # Clear the dropped keys first: no moment has two rows holding one key.
    _write_keys(dict.fromkeys(dropped))
    _fail_dropped_jobs(dropped)
    current = {row.id: row.fullNameKey for row in rows}
    _write_keys({row_id: key for row_id, key in keep.items() if current[row_id] != key})


def _display_keys() -> None:
    """Back to 0002's keys (QBO form as written) for rows that hold one; they stay unique."""
    rows = op.get_bind().execute(
        sa.select(_QBCLASS).where(_QBCLASS.c.fullNameKey.is_not(None))
    ).all()
    keys: dict[str, str | None] = {}
    for row in rows:
        display = join_path(split_full_name(row.fullName or "") or (row.name.strip(),))
        if display.casefold() == row.fullNameKey and display != row.fullNameKey:
            keys[row.id] = display
    _write_keys(keys)


def upgrade() -> None:
    """Case-fold every key (MariaDB/MySQL: compare it exactly), settling collisions."""
    _set_key_collation("utf8mb4_bin")
    if not context.is_offline_mode():  # offline SQL is for empty databases: nothing to fold
        _case_fold_keys()


def downgrade() -> None:
    """Keys back in the casing they were written; dropped keys and failed jobs stay as they are."""
    if not context.is_offline_mode():
        _display_keys()
    _set_key_collation(None)
