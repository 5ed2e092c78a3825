"""A Class belongs to one QBO company: ``"QBClass"."realmId"``, and identity per realm.

A QBO Id is unique only inside its company (docs/qbo.md, "The Class entity"), and two companies
may each have a Class of the same name. So:

1. ``"QBClass"."realmId"`` (NOT NULL). Existing rows take the realm of their sync job (the
   company they were synced to); rows without a job (adopted from the Node service) take the
   realm classsync was configured with when it migrated (``QBO_REALM_ID``, handed over by
   `classsync migrate` / `classsync serve` as the Alembic attribute ``realm_id``, or
   ``alembic -x realm_id=...``). Migrating a database that holds such rows without a realm
   fails and changes nothing.
2. The column's database default is that configured realm too (when one is handed over), so a
   Node service that still inserts rows without knowing the column stores them in its company.
   (SQLite: added with that default, or '' without one, since it cannot add a NOT NULL column
   without a default nor change a column afterwards.)
3. The unique indexes ``QBClass_qbId_key`` and ``QBClass_fullNameKey_key`` become
   ``QBClass_realmId_qbId_key`` and ``QBClass_realmId_fullNameKey_key``.

Revision ID: 0007_realm_identity
Revises: 0006_case_insensitive_identity
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0007_realm_identity"
down_revision: str | Sequence[str] | None = "0006_case_insensitive_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MYSQL = ("mysql", "mariadb")


def _text(mysql_length: int) -> sa.types.TypeEngine[str]:
    # MySQL cannot key TEXT without a prefix length: VARCHAR there, TEXT elsewhere.
    return sa.Text().with_variant(sa.String(mysql_length), *_MYSQL)


def _configured_realm() -> str | None:
    realm = context.config.attributes.get("realm_id") or context.get_x_argument(
        as_dictionary=True
    ).get("realm_id")
    return (str(realm).strip() or None) if realm else None


_QBCLASS = sa.table("QBClass", sa.column("id"), sa.column("realmId"))
_JOB = sa.table("ClasssyncJob", sa.column("classId"), sa.column("realmId"))
# Not filled yet: NULL, or '' on SQLite (see upgrade()).
_UNSET = sa.or_(_QBCLASS.c.realmId.is_(None), _QBCLASS.c.realmId == "")


def _fill_realms() -> None:
    # The realm each Class was queued for: its job's.
    job_realm = sa.select(_JOB.c.realmId).where(_JOB.c.classId == _QBCLASS.c.id)
    has_job = sa.exists().where(_JOB.c.classId == _QBCLASS.c.id)
    op.execute(
        _QBCLASS.update()
        .where(_UNSET, has_job)
        .values(realmId=job_realm.scalar_subquery())
    )
    realm = _configured_realm()
    if not context.is_offline_mode():
        count = sa.select(sa.func.count()).select_from(_QBCLASS).where(_UNSET)
        left = op.get_bind().execute(count).scalar()
        if left and realm is None:
            msg = (
                f"{left} QBClass row(s) have no sync job to tell their QBO realm: migrate with "
                "`classsync migrate` (QBO_REALM_ID set to the Node service's company) or "
                "`alembic -x realm_id=<realm id> upgrade head`"
            )
            raise RuntimeError(msg)
    if realm is not None:
        op.execute(_QBCLASS.update().where(_UNSET).values(realmId=realm))


def upgrade() -> None:
    """Add the realm column, fill it, and make both unique keys per realm."""
    realm = _configured_realm()
    if op.get_bind().dialect.name == "sqlite":
        # SQLite cannot make a column NOT NULL afterwards, and rebuilding "QBClass" (batch
        # mode) would cascade-delete every job through the foreign key: add it NOT NULL with
        # a default instead, then fill it.
        op.add_column(
            "QBClass",
            sa.Column("realmId", _text(191), nullable=False, server_default=realm or ""),
        )
        _fill_realms()
    else:
        op.add_column("QBClass", sa.Column("realmId", _text(191), nullable=True))
        _fill_realms()
        op.alter_column(
            "QBClass", "realmId", existing_type=_text(191), nullable=False, server_default=realm
        )
    op.drop_index("QBClass_qbId_key", table_name="QBClass")
    op.drop_index("QBClass_fullNameKey_key", table_name="QBClass")
    op.create_index("QBClass_realmId_qbId_key", "QBClass", ["realmId", "qbId"], unique=True)
    op.create_index(
        "QBClass_realmId_fullNameKey_key", "QBClass", ["realmId", "fullNameKey"], unique=True
    )


def downgrade() -> None:
    """Back to global keys (fails if two realms now share a QBO Id or a full name)."""
    op.drop_index("QBClass_realmId_fullNameKey_key", table_name="QBClass")
    op.drop_index("QBClass_realmId_qbId_key", table_name="QBClass")
    op.create_index("QBClass_fullNameKey_key", "QBClass", ["fullNameKey"], unique=True)
    op.create_index("QBClass_qbId_key", "QBClass", ["qbId"], unique=True)
    op.drop_column("QBClass", "realmId")
