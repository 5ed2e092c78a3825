"""The Core statements the ingest and the sync engine run most, each built once at import.

SQLAlchemy memoises a statement object's cache key, so reusing these skips re-deriving it on
every claim and outcome (about a tenth of the engine's CPU when they were built per call;
docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import Select, Table, and_, bindparam, case, func, select, union, update

from classsync.store.models import QBClass, SyncJob
from classsync.sync.ports import JobStatus

JOB = cast(Table, SyncJob.__table__)  # a mapped class's __table__ is typed as its FromClause base
CLASS = cast(Table, QBClass.__table__)

_PENDING = JobStatus.PENDING.value
_IN_PROGRESS = JobStatus.IN_PROGRESS.value
_IN_LIST_CHUNK = 500  # bound the size of IN (...) lists


def in_chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    """``items`` in slices small enough for one IN (...) list."""
    for start in range(0, len(items), _IN_LIST_CHUNK):
        yield items[start : start + _IN_LIST_CHUNK]


# --- Class rows --------------------------------------------------------------------------------
# Overwrite a stored row with what the caller sent (executemany, one parameter set per row).
UPDATE_CLASS = (
    update(CLASS)
    .where(CLASS.c.id == bindparam("b_id"))
    .values(
        {
            CLASS.c.name: bindparam("b_name"),
            CLASS.c.fullName: bindparam("b_full_name"),
            CLASS.c.fullNameKey: bindparam("b_key"),
            CLASS.c.isSubClass: bindparam("b_is_sub_class"),
            CLASS.c.isActive: bindparam("b_is_active"),
            CLASS.c.domainSource: bindparam("b_domain_source"),
            CLASS.c.isSparse: bindparam("b_is_sparse"),
            CLASS.c.callerKey: bindparam("b_caller_key"),
            CLASS.c.callerFullName: bindparam("b_caller_full_name"),
            CLASS.c.callerActive: bindparam("b_caller_active"),
            CLASS.c.updatedAt: bindparam("b_now"),
        }
    )
)
# Store QBO's Id and SyncToken on a row, and what QBO now holds (the conflict rule's base); our
# write supersedes any change made in QBO before it.
LINK = (
    update(CLASS)
    .where(CLASS.c.id == bindparam("class_id"))
    .values(
        {
            CLASS.c.qbId: bindparam("qb_id"),
            CLASS.c.versionToken: bindparam("token"),
            CLASS.c.qboName: bindparam("qbo_name"),
            CLASS.c.qboParentId: bindparam("qbo_parent_id"),
            CLASS.c.qboActive: bindparam("qbo_active"),
            CLASS.c.qboEditedAt: None,
            CLASS.c.updatedAt: bindparam("now"),
        }
    )
)

# --- Enqueue -----------------------------------------------------------------------------------
# A new generation of an existing job (executemany). A job being worked on keeps its lease.
REQUEUE_TOUCHED = (
    update(JOB)
    .where(JOB.c.classId == bindparam("b_id"))
    .values(
        {
            JOB.c.generation: JOB.c.generation + 1,
            JOB.c.status: case((JOB.c.status == _IN_PROGRESS, _IN_PROGRESS), else_=_PENDING),
            JOB.c.depth: bindparam("b_depth"),
            JOB.c.attempts: 0,
            JOB.c.nextAttemptAt: bindparam("b_now"),
            JOB.c.lastErrorCode: None,
            JOB.c.lastErrorMessage: None,
            JOB.c.updatedAt: bindparam("b_now"),
        }
    )
)

# --- Claim -------------------------------------------------------------------------------------
_JOB_COLUMNS = (
    JOB.c.classId,
    JOB.c.realmId,
    JOB.c.generation,
    JOB.c.attempts,
    JOB.c.depth,
    JOB.c.outcomeUnknown,
    JOB.c.status,
)
# Two simple queries rather than one with OR: each walks an index in order and stops at
# ``limit`` (status, depth, nextAttemptAt for pending jobs) instead of sorting every due row.
CLAIM_EXPIRED = (
    select(*_JOB_COLUMNS)
    .where(JOB.c.status == _IN_PROGRESS, JOB.c.leaseExpiresAt < bindparam("now"))
    .order_by(JOB.c.depth)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
CLAIM_PENDING = (
    select(*_JOB_COLUMNS)
    .where(JOB.c.status == _PENDING, JOB.c.nextAttemptAt <= bindparam("due_by"))
    .order_by(JOB.c.depth, JOB.c.nextAttemptAt)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
# The same, restricted to one realm (the engine claims across realms; tools may not).
_IN_REALM = JOB.c.realmId == bindparam("realm_id")
CLAIM_EXPIRED_IN_REALM = CLAIM_EXPIRED.where(_IN_REALM)
CLAIM_PENDING_IN_REALM = CLAIM_PENDING.where(_IN_REALM)


def _due_realms() -> Select[tuple[str]]:
    """The realms with a due job, read as a skip from realm to realm (a loose index scan).

    A plain read would visit every due pending row (every job of a backlog). Instead a
    recursive query asks, realm after realm, for the smallest realm id above the last one that
    has a due pending job: one probe of the ``(status, realmId, depth, nextAttemptAt)`` index per
    realm (MIN, not ORDER BY ... LIMIT, so no parenthesised LIMIT inside the UNION ALL, which
    SQLite refuses). For PostgreSQL and SQLite only: MariaDB and MySQL stop a recursive query
    after 1,000 iterations by default (``max_recursive_iterations``, ``cte_max_recursion_depth``),
    so they read ``DUE_REALMS_DISTINCT``, which the same index answers without touching a row.
    Expired leases are few (at most what the workers hold) and are read directly.
    """
    due_pending = and_(JOB.c.status == _PENDING, JOB.c.nextAttemptAt <= bindparam("due_by"))
    first = select(func.min(JOB.c.realmId).label("realmId")).where(due_pending)
    walk = first.cte("due_realm", recursive=True)
    later = JOB.alias("later")
    next_realm = (
        select(func.min(later.c.realmId))
        .where(
            later.c.status == _PENDING,
            later.c.nextAttemptAt <= bindparam("due_by"),
            later.c.realmId > walk.c.realmId,
        )
        .scalar_subquery()
    )
    walk = walk.union_all(select(next_realm).where(walk.c.realmId.is_not(None)))
    pending = select(walk.c.realmId).where(walk.c.realmId.is_not(None))
    expired = select(JOB.c.realmId).where(
        JOB.c.status == _IN_PROGRESS, JOB.c.leaseExpiresAt < bindparam("now")
    )
    return cast("Select[tuple[str]]", union(pending, expired))


# Realms with jobs due now (pending and due, or leases run out): whose turn the engine's
# round-robin can give (sync/realm_rotation.py).
DUE_REALMS = _due_realms()
DUE_REALMS_DISTINCT = union(
    select(JOB.c.realmId).where(
        JOB.c.status == _PENDING, JOB.c.nextAttemptAt <= bindparam("due_by")
    ),
    select(JOB.c.realmId).where(
        JOB.c.status == _IN_PROGRESS, JOB.c.leaseExpiresAt < bindparam("now")
    ),
)
LEASE = (
    update(JOB)
    .where(JOB.c.classId.in_(bindparam("ids", expanding=True)))
    .values(
        {
            # A job reclaimed from a dead worker may have reached QBO: its outcome is unknown.
            JOB.c.outcomeUnknown: JOB.c.outcomeUnknown | (JOB.c.status == _IN_PROGRESS),
            JOB.c.status: _IN_PROGRESS,
            JOB.c.leaseOwner: bindparam("owner"),
            JOB.c.leaseExpiresAt: bindparam("until"),
            JOB.c.updatedAt: bindparam("now"),
        }
    )
)
SNAPSHOT_ROWS = select(
    CLASS.c.id,
    CLASS.c.qbId,
    CLASS.c.name,
    CLASS.c.fullName,
    CLASS.c.fullNameKey,
    CLASS.c.isActive,
    CLASS.c.isSparse,
    CLASS.c.versionToken,
    CLASS.c.qboName,
    CLASS.c.qboParentId,
    CLASS.c.qboActive,
).where(CLASS.c.id.in_(bindparam("ids", expanding=True)))
# Parents are looked up by full name inside the children's realm (identity is per realm).
PARENT_STATES = (
    select(CLASS.c.realmId, CLASS.c.fullNameKey, CLASS.c.qbId, JOB.c.status)
    .select_from(CLASS.outerjoin(JOB, JOB.c.classId == CLASS.c.id))
    .where(
        CLASS.c.realmId.in_(bindparam("realms", expanding=True)),
        CLASS.c.fullNameKey.in_(bindparam("keys", expanding=True)),
    )
)

# --- Outcomes ----------------------------------------------------------------------------------
_OWNED = and_(
    JOB.c.classId == bindparam("class_id"),
    JOB.c.leaseOwner == bindparam("owner"),
    JOB.c.status == _IN_PROGRESS,
)
_RELEASED: dict[Any, Any] = {
    JOB.c.outcomeUnknown: False,
    JOB.c.leaseOwner: None,
    JOB.c.leaseExpiresAt: None,
    JOB.c.lastErrorCode: None,
    JOB.c.lastErrorMessage: None,
    JOB.c.updatedAt: bindparam("now"),
}
# What a synced job becomes: SYNCED, or (the caller sent a newer version while the worker synced
# this one) queued again, due now, attempts reset.
_FINISHED = {**_RELEASED, JOB.c.status: JobStatus.SYNCED.value, JOB.c.syncedAt: bindparam("now")}
_QUEUED_AGAIN = {
    **_RELEASED,
    JOB.c.status: _PENDING,
    JOB.c.attempts: 0,
    JOB.c.nextAttemptAt: bindparam("now"),
}
# Finish the generation the worker synced, if it still holds the lease.
FINISH = (
    update(JOB).where(_OWNED, JOB.c.generation == bindparam("job_generation")).values(_FINISHED)
)
REQUEUE_NEWER = update(JOB).where(_OWNED).values(_QUEUED_AGAIN)

# --- Outcomes of a batch (one transaction) -----------------------------------------------------
# The Class rows to link, locked in id order; a row an ingest holds is skipped, never waited for
# (waiting while holding other rows could deadlock with that ingest).
LOCK_CLASSES = (
    select(CLASS.c.id)
    .where(CLASS.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(CLASS.c.id)
    .with_for_update(skip_locked=True)
)
_OWNED_MANY = and_(
    JOB.c.classId.in_(bindparam("ids", expanding=True)),
    JOB.c.leaseOwner == bindparam("owner"),
    JOB.c.status == _IN_PROGRESS,
)
# The jobs still leased to the worker, with the generation each is at now.
OWNED_GENERATIONS = (
    select(JOB.c.classId, JOB.c.generation)
    .where(_OWNED_MANY)
    .order_by(JOB.c.classId)
    .with_for_update()
)
FINISH_MANY = update(JOB).where(_OWNED_MANY).values(_FINISHED)
REQUEUE_NEWER_MANY = update(JOB).where(_OWNED_MANY).values(_QUEUED_AGAIN)
