"""Typed SQLAlchemy models of every table classsync uses, column for column like schema.prisma."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    CHAR,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    Uuid,
    false,
    text,
    true,
)
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

# Prisma's default constraint/index names on PostgreSQL, so a database created by the Node
# service (Prisma) and one created by our migrations carry the same names.
NAMING_CONVENTION: dict[str, str] = {
    "pk": "%(table_name)s_pkey",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
    "ix": "%(table_name)s_%(column_0_N_name)s_idx",
}

_MYSQL = ("mysql", "mariadb")


def utcnow() -> datetime:
    """Naive UTC now, truncated to milliseconds (the precision of TIMESTAMP(3)/DATETIME(3))."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def new_id() -> str:
    """A new primary key for QBClass; Prisma generates uuids in the client, so we do too."""
    return str(uuid.uuid4())


def _uuid() -> TypeEngine[str]:
    # Native UUID on PostgreSQL (Prisma's @db.Uuid); the canonical 36-character text elsewhere,
    # so ids look the same in every database and in the API.
    return Uuid(as_uuid=False).with_variant(CHAR(36), *_MYSQL, "sqlite")


def _timestamp() -> TypeEngine[datetime]:
    # Prisma's DateTime: TIMESTAMP(3) on PostgreSQL, DATETIME(3) on MySQL; values are naive UTC.
    return (
        DateTime()
        .with_variant(postgresql.TIMESTAMP(precision=3), "postgresql")
        .with_variant(mysql.DATETIME(fsp=3), *_MYSQL)
    )


def _text(mysql_length: int | None = None) -> TypeEngine[str]:
    # TEXT exactly like Prisma on PostgreSQL. MySQL cannot index or key a TEXT column without a
    # prefix length, so indexed/keyed columns become VARCHAR(n) there (utf8mb4: 4 bytes a char).
    if mysql_length is None:
        return Text()
    return Text().with_variant(String(mysql_length), *_MYSQL)


_CURRENT_TIMESTAMP = text("CURRENT_TIMESTAMP")


class Base(DeclarativeBase):
    """Declarative base of classsync's tables, with Prisma's naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class QBClass(Base):
    """A QBO Class as the Node service stored it (table "QBClass"), plus ``fullNameKey`` and
    ``realmId``."""

    __tablename__ = "QBClass"
    __table_args__ = (
        # Prisma's @@unique is a unique INDEX (not a constraint) named <Table>_<cols>_key. A QBO
        # Id and a full name are unique only inside one company (realm).
        Index("QBClass_realmId_qbId_key", "realmId", "qbId", unique=True),
        Index("QBClass_realmId_fullNameKey_key", "realmId", "fullNameKey", unique=True),
        Index("QBClass_realmId_callerKey_idx", "realmId", "callerKey"),
    )

    id: Mapped[str] = mapped_column("id", _uuid(), primary_key=True, default=new_id)
    qb_id: Mapped[str | None] = mapped_column("qbId", _text(191))
    name: Mapped[str] = mapped_column("name", Text())
    full_name: Mapped[str | None] = mapped_column("fullName", Text())
    is_sub_class: Mapped[bool] = mapped_column(
        "isSubClass", Boolean(), default=False, server_default=false()
    )
    is_active: Mapped[bool] = mapped_column(
        "isActive", Boolean(), default=True, server_default=true()
    )
    domain_source: Mapped[str | None] = mapped_column("domainSource", Text())
    version_token: Mapped[int] = mapped_column(
        "versionToken", Integer(), default=0, server_default=text("0")
    )
    is_sparse: Mapped[bool] = mapped_column(
        "isSparse", Boolean(), default=False, server_default=false()
    )
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", _timestamp(), default=utcnow, server_default=_CURRENT_TIMESTAMP
    )
    # Prisma's @updatedAt has no database default; the client sets it on every write.
    updated_at: Mapped[datetime] = mapped_column(
        "updatedAt", _timestamp(), default=utcnow, onupdate=utcnow
    )
    # Ours: the identity of a Class that has no qbId yet, the QBO-form path case-folded
    # ("a:b:c", domain.identity_key). A full path is at most 5 levels of 100 characters plus
    # separators (docs/qbo.md, "The Class entity"). MySQL compares it byte for byte, like
    # PostgreSQL and SQLite: the case-folding is done before it is stored, on every database.
    full_name_key: Mapped[str | None] = mapped_column(
        "fullNameKey", Text().with_variant(String(512, collation="utf8mb4_bin"), *_MYSQL)
    )
    # Ours: the QBO company (realm) the Class belongs to.
    realm_id: Mapped[str] = mapped_column("realmId", _text(191))
    # What QBO held after our last write or the last change read from QBO: the base the conflict
    # rule compares the caller's and QBO's values with (docs/architecture.md).
    qbo_name: Mapped[str | None] = mapped_column("qboName", Text())
    qbo_parent_id: Mapped[str | None] = mapped_column("qboParentId", Text())
    qbo_active: Mapped[bool | None] = mapped_column("qboActive", Boolean())
    # When a change made in QBO itself was last applied here; our next write to QBO clears it.
    qbo_edited_at: Mapped[datetime | None] = mapped_column("qboEditedAt", _timestamp())
    # What the caller last sent for this row (its full-name key, full name and active flag): a
    # caller repeating itself after a change made in QBO is found by it and changes nothing.
    caller_key: Mapped[str | None] = mapped_column(
        "callerKey", Text().with_variant(String(512, collation="utf8mb4_bin"), *_MYSQL)
    )
    caller_full_name: Mapped[str | None] = mapped_column("callerFullName", Text())
    caller_active: Mapped[bool | None] = mapped_column("callerActive", Boolean())


class SyncJob(Base):
    """The outbox: exactly one row per Class, telling the sync engine what to push to QBO."""

    __tablename__ = "ClasssyncJob"
    __table_args__ = (
        Index("ClasssyncJob_status_nextAttemptAt_idx", "status", "nextAttemptAt"),
        # The claim's order: parents (smaller depth) first, then the longest-waiting.
        Index("ClasssyncJob_status_depth_nextAttemptAt_idx", "status", "depth", "nextAttemptAt"),
        # The engine's claim inside one realm, in the same order, and the skip from realm to
        # realm that lists the realms with due work (migration 0009).
        Index(
            "ClasssyncJob_status_realmId_depth_nextAttemptAt_idx",
            "status",
            "realmId",
            "depth",
            "nextAttemptAt",
        ),
    )

    class_id: Mapped[str] = mapped_column(
        "classId",
        _uuid(),
        # Prisma's relation default is ON UPDATE CASCADE; keep the DDL identical to schema.prisma.
        ForeignKey(QBClass.id, ondelete="CASCADE", onupdate="CASCADE"),
        primary_key=True,
    )
    realm_id: Mapped[str] = mapped_column("realmId", _text(191))
    # PENDING / IN_PROGRESS / SYNCED / FAILED as text: a Node database may own enum "SyncStatus".
    status: Mapped[str] = mapped_column(
        "status", _text(32), default="PENDING", server_default=text("'PENDING'")
    )
    generation: Mapped[int] = mapped_column(
        "generation", Integer(), default=1, server_default=text("1")
    )
    depth: Mapped[int] = mapped_column("depth", Integer(), default=1, server_default=text("1"))
    attempts: Mapped[int] = mapped_column(
        "attempts", Integer(), default=0, server_default=text("0")
    )
    next_attempt_at: Mapped[datetime] = mapped_column(
        "nextAttemptAt", _timestamp(), default=utcnow, server_default=_CURRENT_TIMESTAMP
    )
    lease_owner: Mapped[str | None] = mapped_column("leaseOwner", Text())
    lease_expires_at: Mapped[datetime | None] = mapped_column("leaseExpiresAt", _timestamp())
    outcome_unknown: Mapped[bool] = mapped_column(
        "outcomeUnknown", Boolean(), default=False, server_default=false()
    )
    last_error_code: Mapped[str | None] = mapped_column("lastErrorCode", Text())
    last_error_message: Mapped[str | None] = mapped_column("lastErrorMessage", Text())
    synced_at: Mapped[datetime | None] = mapped_column("syncedAt", _timestamp())
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", _timestamp(), default=utcnow, server_default=_CURRENT_TIMESTAMP
    )
    updated_at: Mapped[datetime] = mapped_column(
        "updatedAt", _timestamp(), default=utcnow, onupdate=utcnow
    )


class WebhookEvent(Base):
    """The webhook inbox: one row per QBO event id, stored before the endpoint answers."""

    __tablename__ = "ClasssyncWebhookEvent"
    __table_args__ = (
        Index("ClasssyncWebhookEvent_processedAt_receivedAt_idx", "processedAt", "receivedAt"),
    )

    event_id: Mapped[str] = mapped_column("eventId", _text(191), primary_key=True)
    realm_id: Mapped[str] = mapped_column("realmId", Text())
    entity_name: Mapped[str] = mapped_column("entityName", Text())
    entity_id: Mapped[str] = mapped_column("entityId", Text())
    operation: Mapped[str] = mapped_column("operation", Text())
    occurred_at: Mapped[datetime | None] = mapped_column("occurredAt", _timestamp())
    received_at: Mapped[datetime] = mapped_column(
        "receivedAt", _timestamp(), default=utcnow, server_default=_CURRENT_TIMESTAMP
    )
    processed_at: Mapped[datetime | None] = mapped_column("processedAt", _timestamp())
    attempts: Mapped[int] = mapped_column(
        "attempts", Integer(), default=0, server_default=text("0")
    )
    last_error: Mapped[str | None] = mapped_column("lastError", Text())


class CdcMark(Base):
    """Per realm, the ``changedSince`` of the next CDC poll (QBO's time of the last answer)."""

    __tablename__ = "ClasssyncCdcMark"

    realm_id: Mapped[str] = mapped_column("realmId", _text(191), primary_key=True)
    changed_since: Mapped[datetime] = mapped_column("changedSince", _timestamp())
    updated_at: Mapped[datetime] = mapped_column(
        "updatedAt", _timestamp(), default=utcnow, onupdate=utcnow
    )


class QboRealm(Base):
    """OAuth state of one QBO company (realm); token columns may hold Fernet ciphertext."""

    __tablename__ = "ClasssyncRealm"

    realm_id: Mapped[str] = mapped_column("realmId", _text(191), primary_key=True)
    access_token: Mapped[str | None] = mapped_column("accessToken", Text())
    access_token_expires_at: Mapped[datetime | None] = mapped_column(
        "accessTokenExpiresAt", _timestamp()
    )
    refresh_token: Mapped[str | None] = mapped_column("refreshToken", Text())
    refresh_token_expires_at: Mapped[datetime | None] = mapped_column(
        "refreshTokenExpiresAt", _timestamp()
    )
    status: Mapped[str] = mapped_column(
        "status", _text(32), default="CONNECTED", server_default=text("'CONNECTED'")
    )
    status_message: Mapped[str | None] = mapped_column("statusMessage", Text())
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", _timestamp(), default=utcnow, server_default=_CURRENT_TIMESTAMP
    )
    updated_at: Mapped[datetime] = mapped_column(
        "updatedAt", _timestamp(), default=utcnow, onupdate=utcnow
    )

    def __repr__(self) -> str:
        # Tokens never reach a log line or a traceback through repr().
        return f"QboRealm(realm_id={self.realm_id!r}, status={self.status!r})"


class Replica(Base):
    """A running `classsync serve` process; live ones share each realm's QBO budget."""

    __tablename__ = "ClasssyncReplica"

    replica_id: Mapped[str] = mapped_column("replicaId", _text(191), primary_key=True)
    heartbeat_at: Mapped[datetime] = mapped_column("heartbeatAt", _timestamp())
    started_at: Mapped[datetime] = mapped_column(
        "startedAt", _timestamp(), default=utcnow, server_default=_CURRENT_TIMESTAMP
    )


__all__ = [
    "NAMING_CONVENTION",
    "Base",
    "CdcMark",
    "QBClass",
    "QboRealm",
    "Replica",
    "SyncJob",
    "WebhookEvent",
    "new_id",
    "utcnow",
]
