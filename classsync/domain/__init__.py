"""The domain: Class records, validation, identity rules and the error tree; no I/O.

Everything is re-exported here, so callers import from ``classsync.domain`` whatever module
holds it.
"""

from __future__ import annotations

from classsync.domain.classes import (
    MAX_DEPTH,
    MAX_FIELD_LENGTH,
    MAX_NAME_LENGTH,
    MAX_QB_ID_LENGTH,
    QBO_SEPARATOR,
    ClassInput,
    ClassOutcome,
    ClassWrite,
    ErrorCode,
    QboClass,
    RealmTokens,
    Rejection,
    SyncStatus,
    ValidClass,
    join_path,
    split_full_name,
)
from classsync.domain.errors import (
    ClasssyncError,
    InvalidArgument,
    QboAuthExpired,
    QboDisconnected,
    QboDuplicateName,
    QboError,
    QboInvalidReference,
    QboNotFound,
    QboOutcomeUnknown,
    QboRejected,
    QboRetryable,
    QboServerError,
    QboStaleSyncToken,
    QboThrottled,
    RequestTooLarge,
    Unauthenticated,
    WatchExpired,
)
from classsync.domain.identity import KnownRows, Placeholder, UpsertPlan, lookup_keys, plan_upsert
from classsync.domain.validation import validate

__all__ = [
    "MAX_DEPTH",
    "MAX_FIELD_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_QB_ID_LENGTH",
    "QBO_SEPARATOR",
    "ClassInput",
    "ClassOutcome",
    "ClassWrite",
    "ClasssyncError",
    "ErrorCode",
    "InvalidArgument",
    "KnownRows",
    "Placeholder",
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
    "UpsertPlan",
    "ValidClass",
    "WatchExpired",
    "join_path",
    "lookup_keys",
    "plan_upsert",
    "split_full_name",
    "validate",
]
