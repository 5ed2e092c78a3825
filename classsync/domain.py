"""Class records, validation, full-name parsing, sync statuses and the error tree; no I/O."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime

# QBO limits (shared/qbo-reference.md §1.1-1.2): Name at most 100 characters, sub-classes at most
# 5 levels deep, ':' is the FullyQualifiedName separator and is refused in a Name.
MAX_NAME_LENGTH = 100
MAX_DEPTH = 5
QBO_SEPARATOR = ":"
# The seed's example payload writes paths as "Company / Software Dept"; QBO writes "Company:Software Dept".
_SLASH_SEPARATOR = re.compile(r"\s+/\s+")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class SyncStatus(enum.StrEnum):
    """Where one Class stands with QBO. Stored as text (a Node database may own an enum named SyncStatus)."""

    PENDING = "PENDING"  # stored locally, QBO work not finished yet (includes retries after faults)
    SYNCED = "SYNCED"  # QBO holds the latest version; qbId/versionToken are QBO's Id/SyncToken
    FAILED = "FAILED"  # QBO refused it for good, or attempts ran out; see the error fields
    INVALID = "INVALID"  # refused by validation before anything was stored (never in the database)


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
    DUPLICATE_IN_REQUEST = "DUPLICATE_IN_REQUEST"
    QBO_REJECTED = "QBO_REJECTED"
    QBO_UNAVAILABLE = "QBO_UNAVAILABLE"
    QBO_DISCONNECTED = "QBO_DISCONNECTED"
    ATTEMPTS_EXHAUSTED = "ATTEMPTS_EXHAUSTED"
    PARENT_FAILED = "PARENT_FAILED"
    TIMED_OUT = "TIMED_OUT"


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

    ``path`` is the full list of levels, ``path[-1] == name``; ``key`` is ``join_path(path)``,
    the identity used when there is no qb_id.
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
        """Identity by fully-qualified name (QBO form)."""
        return join_path(self.path)

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


def _check_name(name: str, what: str) -> Rejection | None:
    if not name:
        return Rejection(ErrorCode.NAME_EMPTY, f"{what} is empty")
    if len(name) > MAX_NAME_LENGTH:
        return Rejection(
            ErrorCode.NAME_TOO_LONG,
            f"{what} has {len(name)} characters; QBO allows at most {MAX_NAME_LENGTH}",
        )
    if QBO_SEPARATOR in name:
        return Rejection(
            ErrorCode.NAME_HAS_COLON,
            f"{what} contains ':', which QBO reserves as the sub-class separator",
        )
    if _CONTROL_CHARS.search(name):
        return Rejection(
            ErrorCode.NAME_HAS_CONTROL_CHARACTER,
            f"{what} contains a control character (tab, newline, ...)",
        )
    return None


def validate(item: ClassInput) -> ValidClass | Rejection:
    """Check one Class against the domain rules; return it normalised or say why not."""
    name = item.name.strip()
    problem = _check_name(name, "name")
    if problem:
        return problem
    if item.version_token < 0:
        return Rejection(
            ErrorCode.NEGATIVE_VERSION_TOKEN,
            f"version_token is {item.version_token}; it cannot be negative",
        )
    for label, value, limit in (
        ("qb_id", item.qb_id, MAX_QB_ID_LENGTH),
        ("full_name", item.full_name, MAX_FIELD_LENGTH),
        ("domain_source", item.domain_source, MAX_FIELD_LENGTH),
    ):
        if len(value) > limit:
            return Rejection(
                ErrorCode.FIELD_TOO_LONG,
                f"{label} has {len(value)} characters; at most {limit} are accepted",
            )

    path = split_full_name(item.full_name) if item.full_name.strip() else (name,)
    for index, level in enumerate(path):
        if not level:
            return Rejection(
                ErrorCode.FULL_NAME_EMPTY_LEVEL,
                f"full_name {item.full_name!r} has an empty level at position {index + 1}",
            )
        problem = _check_name(level, f"level {index + 1} of full_name")
        if problem:
            return problem
    if path[-1] != name:
        return Rejection(
            ErrorCode.FULL_NAME_MISMATCH,
            f"full_name {item.full_name!r} ends with {path[-1]!r}, not with name {name!r}",
        )
    if len(path) > MAX_DEPTH:
        return Rejection(
            ErrorCode.TOO_DEEP,
            f"full_name has {len(path)} levels; QBO allows at most {MAX_DEPTH}",
        )
    if item.is_sub_class and len(path) < 2:
        return Rejection(
            ErrorCode.SUBCLASS_WITHOUT_PARENT,
            "is_sub_class is true but full_name names no parent (use 'Parent:Child')",
        )
    if not item.is_sub_class and len(path) > 1:
        return Rejection(
            ErrorCode.TOP_LEVEL_WITH_PARENT,
            f"full_name {item.full_name!r} names a parent but is_sub_class is false",
        )
    # PostgreSQL text cannot hold U+0000 (psycopg refuses it even as a parameter), so a NUL would
    # fail the whole ClassRequest; the name's NUL is already a control character above.
    for label in ("qb_id", "full_name", "domain_source"):
        if "\x00" in getattr(item, label):
            return Rejection(ErrorCode.FIELD_HAS_NUL, f"{label} contains a NUL character (U+0000)")
    qb_id = item.qb_id.strip() or None
    return ValidClass(
        qb_id=qb_id,
        name=name,
        path=path,
        full_name=item.full_name or None,
        is_sub_class=len(path) > 1,
        is_active=item.is_active,
        domain_source=item.domain_source or None,
        version_token=item.version_token,
        is_sparse=item.is_sparse,
    )


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
    # Deterministic per job generation, so a retried create is deduplicated by QBO (qbo-reference §3).
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


# ---------------------------------------------------------------------------------------------
# Errors. Each declares the gRPC status the transport should use when it ends a call; the domain
# itself does not import grpc (api/interceptors.py maps the names).


class ClasssyncError(Exception):
    """Base of every error classsync raises on purpose."""

    grpc_status = "INTERNAL"


class RequestTooLarge(ClasssyncError):
    """A ClassRequest carries more Classes than the configured limit."""

    grpc_status = "RESOURCE_EXHAUSTED"


class Unauthenticated(ClasssyncError):
    """The caller presented no token or a wrong one."""

    grpc_status = "UNAUTHENTICATED"


class QboError(ClasssyncError):
    """A QBO call failed. ``code`` is QBO's fault code as text ('' when there was none)."""

    grpc_status = "UNAVAILABLE"

    def __init__(self, message: str, *, code: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail

    @property
    def error_code(self) -> str:
        """``QBO_<code>`` or a generic name, for results and logs."""
        return f"QBO_{self.code}" if self.code else ErrorCode.QBO_UNAVAILABLE.value


class QboRetryable(QboError):
    """Transient: timeouts, dropped connections, 5xx, unreadable bodies. Retry with backoff."""


class QboThrottled(QboRetryable):
    """HTTP 429 / fault 3001. ``retry_after`` in seconds when QBO said so."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, code: str = "3001"
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class QboServerError(QboRetryable):
    """QBO answered HTTP 5xx: its own trouble, not a verdict on the payload.

    A burst of these means QBO (or the realm's shard) is struggling, so the realm pauses as it
    does after a 429 instead of every worker hammering it.
    """

    def __init__(self, message: str, *, status: int, code: str = "", detail: str = "") -> None:
        super().__init__(message, code=code, detail=detail)
        self.status = status


class QboOutcomeUnknown(QboRetryable):
    """The request may have reached QBO (timeout or dropped connection after sending)."""


class QboAuthExpired(QboError):
    """HTTP 401: the access token is expired or invalid; refresh and retry once."""


class QboDisconnected(QboError):
    """The refresh token was refused (invalid_grant): a person must reconnect the realm."""


class QboRejected(QboError):
    """QBO refused the write for good (validation/business fault). Do not retry."""

    grpc_status = "FAILED_PRECONDITION"


class QboStaleSyncToken(QboRejected):
    """Fault 5010: the SyncToken sent is older than QBO's. Re-read and retry."""


class QboDuplicateName(QboRejected):
    """Fault 6240: a class with this name already exists under the same parent."""


class QboNotFound(QboRejected):
    """Fault 610: no class with that Id (or it is inactive)."""


class QboInvalidReference(QboRejected):
    """Fault 2500: ParentRef points at a missing or inactive class."""


__all__ = [
    "MAX_DEPTH",
    "MAX_NAME_LENGTH",
    "ClassInput",
    "ClassOutcome",
    "ClassWrite",
    "ClasssyncError",
    "ErrorCode",
    "QboAuthExpired",
    "QboClass",
    "QboDisconnected",
    "QboDuplicateName",
    "QboError",
    "QboInvalidReference",
    "QboNotFound",
    "QboOutcomeUnknown",
    "QboRejected",
    "QboRetryable",
    "QboServerError",
    "QboStaleSyncToken",
    "QboThrottled",
    "RealmTokens",
    "Rejection",
    "RequestTooLarge",
    "SyncStatus",
    "Unauthenticated",
    "ValidClass",
    "join_path",
    "split_full_name",
]
