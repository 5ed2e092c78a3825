"""Two-way sync: what QBO held at the last sync on each Class, the webhook inbox, the CDC marks.

1. ``"QBClass"``: ``qboName``, ``qboParentId``, ``qboActive`` (nullable) hold the values QBO
   had after our last write or the last change read from QBO: the base the conflict rule
   compares both sides with (docs/architecture.md, "Changes made in QBO"). ``qboEditedAt``
   (nullable) is when a change made in QBO itself was last applied to the row; our next
   successful write clears it. Existing rows keep NULL (no base known: the rule treats every
   difference as a change made in QBO). ``callerKey``, ``callerFullName``, ``callerActive``
   (nullable; ``callerKey`` case-folded like ``fullNameKey``, indexed) hold what the caller last
   sent for the row, so a caller that repeats itself after a change made in QBO is recognised
   (under its old name too) and changes nothing.
2. ``"ClasssyncWebhookEvent"``: the webhook inbox, one row per event id (a redelivery is a
   no-op), stored before the endpoint answers and processed afterwards.
3. ``"ClasssyncCdcMark"``: per realm, the ``changedSince`` of the next CDC poll, stored in the
   transaction that applies the changes it covers.

All additive: a Node database is adopted unchanged.

Revision ID: 0008_two_way
Revises: 0007_realm_identity
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision: str = "0008_two_way"
down_revision: str | Sequence[str] | None = "0007_realm_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MYSQL = ("mysql", "mariadb")


def _timestamp() -> sa.types.TypeEngine[object]:
    return (
        sa.DateTime()
        .with_variant(postgresql.TIMESTAMP(precision=3), "postgresql")
        .with_variant(mysql.DATETIME(fsp=3), *_MYSQL)
    )


def _text(mysql_length: int) -> sa.types.TypeEngine[str]:
    # MySQL cannot key or index a TEXT column without a prefix length: VARCHAR there, TEXT
    # elsewhere.
    return sa.Text().with_variant(sa.String(mysql_length), *_MYSQL)


def _key_text() -> sa.types.TypeEngine[str]:
    return _text(191)


def _now() -> sa.TextClause:
    if op.get_bind().dialect.name == "mysql":
        return sa.text("CURRENT_TIMESTAMP(3)")
    return sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    """Add the base columns, the webhook inbox and the CDC marks."""
    op.add_column("QBClass", sa.Column("qboName", sa.Text(), nullable=True))
    op.add_column("QBClass", sa.Column("qboParentId", sa.Text(), nullable=True))
    op.add_column("QBClass", sa.Column("qboActive", sa.Boolean(), nullable=True))
    op.add_column("QBClass", sa.Column("qboEditedAt", _timestamp(), nullable=True))
    # A case-folded identity key like "fullNameKey", compared byte for byte on MySQL too.
    caller_key = sa.Text().with_variant(sa.String(512, collation="utf8mb4_bin"), *_MYSQL)
    op.add_column("QBClass", sa.Column("callerKey", caller_key, nullable=True))
    op.add_column("QBClass", sa.Column("callerFullName", sa.Text(), nullable=True))
    op.add_column("QBClass", sa.Column("callerActive", sa.Boolean(), nullable=True))
    # With the realm first: every look-up is inside one realm, and a realm may hold every row.
    op.create_index("QBClass_realmId_callerKey_idx", "QBClass", ["realmId", "callerKey"])
    op.create_table(
        "ClasssyncWebhookEvent",
        sa.Column("eventId", _key_text(), nullable=False),
        sa.Column("realmId", sa.Text(), nullable=False),
        sa.Column("entityName", sa.Text(), nullable=False),
        sa.Column("entityId", sa.Text(), nullable=False),
        sa.Column("operation", sa.Text(), nullable=False),
        sa.Column("occurredAt", _timestamp(), nullable=True),
        sa.Column("receivedAt", _timestamp(), nullable=False, server_default=_now()),
        sa.Column("processedAt", _timestamp(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("lastError", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("eventId", name="ClasssyncWebhookEvent_pkey"),
    )
    op.create_index(
        "ClasssyncWebhookEvent_processedAt_receivedAt_idx",
        "ClasssyncWebhookEvent",
        ["processedAt", "receivedAt"],
    )
    op.create_table(
        "ClasssyncCdcMark",
        sa.Column("realmId", _key_text(), nullable=False),
        sa.Column("changedSince", _timestamp(), nullable=False),
        sa.Column("updatedAt", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("realmId", name="ClasssyncCdcMark_pkey"),
    )


def downgrade() -> None:
    """Drop what upgrade added."""
    op.drop_table("ClasssyncCdcMark")
    op.drop_index(
        "ClasssyncWebhookEvent_processedAt_receivedAt_idx", table_name="ClasssyncWebhookEvent"
    )
    op.drop_table("ClasssyncWebhookEvent")
    op.drop_index("QBClass_realmId_callerKey_idx", table_name="QBClass")
    with op.batch_alter_table("QBClass") as batch:
        for column in (
            "callerActive",
            "callerFullName",
            "callerKey",
            "qboEditedAt",
            "qboActive",
            "qboParentId",
            "qboName",
        ):
            batch.drop_column(column)
