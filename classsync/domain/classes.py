"""Class records as callers send them, store them and QBO holds them; full-name paths; codes."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime

# QBO limits (docs/qbo.md, "The Class entity"): Name at most 100 characters, sub-classes at most
# 5 levels deep, ':' is the FullyQualifiedName separator and is refused in a Name.
MAX_NAME_LENGTH = 100
MAX_DEPTH = 5
QBO_SEPARATOR = ":"
# The seed's example payload writes paths as "Company / Software Dept"; QBO writes "Company:Software Dept".
_SLASH_SEPARATOR = re.compile(r"\s+/\s+")


class SyncStatus(enum.StrEnum):
    """Where one Class stands with QBO. Stored as text (a Node database may own an enum named SyncStatus)."""

    PENDING = "PENDING"  # stored locally, QBO work not finished yet (includes retries after faults)
    SYNCED = "SYNCED"  # QBO holds the latest version; qbId/versionToken are QBO's Id/SyncToken
    FAILED = "FAILED"  # QBO refused it for good, or attempts ran out; see the error fields
    INVALID = "INVALID"  # refused by validation before anything was stored (never in the database)
    NOT_FOUND = "NOT_FOUND"  # read API only: no Class of the realm has the key asked for


class ErrorCode(enum.StrEnum):
    """Machine-readable reasons a Class was refused or failed. QBO faults use ``QBO_<code>``."""

    EMPTY_REQUEST = "EMPTY_REQUEST"
    NAME_EMPTY = "NAME_EMPTY"
    NAME_TOO_LONG = "NAME_TOO_LONG"
    NAME_HAS_COLON = "NAME_HAS_COLON"
    NAME_HAS_CONTROL_CHARACTER = "NAME_HAS_CONTROL_CHARACTER"
    FULL_NAME_MISMATCH = "FULL_NAME_MISMATCH"
    FULL_NAME_EMPTY_LEVEL = "FULL_NAME_EMPTY_LEVEL"
    SUBCLASS_WITHOUT_PARENT = "SUBCLASS_WITHOUT_PARENT"
    TOP_LEVEL_WITH_PARENT = "TOP_LEVEL_WITH_PARENT"
    TOO_DEEP = "TOO_DEEP"
    NEGATIVE_VERSION_TOKEN = "NEGATIVE_VERSION_TOKEN"
    FIELD_TOO_LONG = "FIELD_TOO_LONG"
    FIELD_HAS_NUL = "FIELD_HAS_NUL"
    UNKNOWN_QB_ID = "UNKNOWN_QB_ID"
    QB_ID_CONFLICT = "QB_ID_CONFLICT"
    QBO_UNAVAILABLE = "QBO_UNAVAILABLE"  # QBO itself failed (timeout, 5xx): never our own fault
    INTERNAL_ERROR = "INTERNAL_ERROR"  # a bug in classsync: the job is retried, the log says more
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"  # the database failed while the job was worked on
    DUPLICATE_NAME = "DUPLICATE_NAME"  # another row holds the same name (differing in case only)
    QBO_DISCONNECTED = "QBO_DISCONNECTED"
    ATTEMPTS_EXHAUSTED = "ATTEMPTS_EXHAUSTED"
    PARENT_FAILED = "PARENT_FAILED"
    TIMED_OUT = "TIMED_OUT"
    NOT_FOUND = "NOT_FOUND"


# Limits on free-text fields we store; generous, but bounded so one caller cannot bloat a row.
MAX_FIELD_LENGTH = 1000
# QBO Ids are short decimal strings ("5000000000000007280"); the column is VARCHAR(191) on MySQL.
MAX_QB_ID_LENGTH = 100


def split_full_name(full_name: str) -> tuple[str, ...]:
    """Split a fully-qualified name into its levels.

    Accepts QBO's ``A:B:C`` and the seed example's ``A / B / C``. Levels are stripped of
    surrounding blanks; empty levels are kept (as "") so validation can name them.
    """
    text = full_name.strip()
    if not text:
        return ()
    parts = text.split(QBO_SEPARATOR) if QBO_SEPARATOR in text else _SLASH_SEPARATOR.split(text)
    return tuple(part.strip() for part in parts)


def join_path(path: tuple[str, ...]) -> str:
    """The QBO FullyQualifiedName of a path: levels joined with ':'."""
    return QBO_SEPARATOR.join(path)


def identity_key(path: tuple[str, ...]) -> str:
    """The identity of a full name: QBO form, case-folded.

    QBO holds one class for names that differ only in case (docs/qbo.md, "The Class entity"),
    so "Marketing" and "marketing" must find the same row on every database, whatever the
    collation of the column that stores the key.
    """
    return join_path(path).casefold()


@dataclass(frozen=True, slots=True)
class ClassInput:
    """One Class exactly as a caller sent it (proto3 defaults included)."""

    qb_id: str = ""
    name: str = ""
    full_name: str = ""
    is_sub_class: bool = False
    is_active: bool = True
    domain_source: str = ""
    version_token: int = 0
    is_sparse: bool = False


@dataclass(frozen=True, slots=True)
class ValidClass:
    """A Class that passed validation, normalised for storage and for QBO.

    ``path`` is the full list of levels, ``path[-1] == name``; ``key`` is
    ``identity_key(path)``, the identity used when there is no qb_id.
    """

    qb_id: str | None
    name: str
    path: tuple[str, ...]
    full_name: str | None  # as the caller wrote it (stored unchanged, like the Node service did)
    is_sub_class: bool
    is_active: bool
    domain_source: str | None
    version_token: int
    is_sparse: bool

    @property
    def key(self) -> str:
        """Identity by fully-qualified name (QBO form, case-folded)."""
        return identity_key(self.path)

    @property
    def parent_path(self) -> tuple[str, ...]:
        """Levels of the parent; empty for a top-level Class."""
        return self.path[:-1]

    @property
    def depth(self) -> int:
        """1 for a top-level Class, 2 for its child, ... at most MAX_DEPTH."""
        return len(self.path)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a Class was refused before it was stored."""

    code: ErrorCode
    message: str


@dataclass(frozen=True, slots=True)
class ClassOutcome:
    """What a caller is told about one Class of its stream."""

    stream_index: int
    request_index: int
    status: SyncStatus
    name: str = ""
    full_name: str = ""
    id: str = ""
    qb_id: str = ""
    sync_token: str = ""
    error_code: str = ""
    error_message: str = ""

    @property
    def succeeded(self) -> bool:
        """True when QBO holds this Class."""
        return self.status is SyncStatus.SYNCED


@dataclass(frozen=True, slots=True)
class QboClass:
    """A Class as QBO holds it (the subset classsync reads)."""

    id: str
    sync_token: str
    name: str
    fully_qualified_name: str
    active: bool
    parent_id: str | None = None


@dataclass(frozen=True, slots=True)
class ClassWrite:
    """What to send QBO for one Class: a create when ``qbo_id`` is None, else an update."""

    name: str
    active: bool
    parent_id: str | None = None
    qbo_id: str | None = None
    sync_token: str | None = None
    sparse: bool = False
    # Deterministic per job generation, so QBO deduplicates a retried create
    # (docs/qbo.md, "requestid and duplicates").
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class RealmTokens:
    """OAuth tokens of one QBO company (realm). Datetimes are timezone-aware UTC."""

    realm_id: str
    refresh_token: str
    access_token: str | None = None
    access_expires_at: datetime | None = None
    refresh_expires_at: datetime | None = None

    def __repr__(self) -> str:
        # Never let a token reach a log line or a traceback through repr().
        return (
            f"RealmTokens(realm_id={self.realm_id!r}, access_expires_at={self.access_expires_at!r})"
        )
