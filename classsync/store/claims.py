"""Claiming: lease due jobs and read what the engine needs to sync them, in five statements."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection, Row

from classsync.domain import SideValues, identity_key, join_path, split_full_name
from classsync.store import statements as sql
from classsync.sync.ports import ClaimedJob, ClassSnapshot, JobStatus

_IN_PROGRESS = JobStatus.IN_PROGRESS.value


def claim_due_jobs(
    connection: Connection,
    *,
    owner: str,
    limit: int,
    until: datetime,
    now: datetime,
    realm_id: str | None,
) -> list[ClaimedJob]:
    """Lease up to ``limit`` due jobs to ``owner`` until ``until``, parents before children.

    Due = pending and past its next attempt time, or in progress with an expired lease (its
    worker died). PostgreSQL and MariaDB skip rows other replicas hold (FOR UPDATE SKIP LOCKED);
    SQLite serialises writers, so it is single-process only. ``realm_id`` restricts the claim
    to one realm's jobs, and to one depth level (see ``one_level``). At most five statements:
    due jobs (two), lease, snapshots, parents.
    """
    jobs = _due_jobs(connection, limit=limit, now=now, realm_id=realm_id)
    if realm_id is not None:
        jobs = one_level(jobs)
    if not jobs:
        return []
    ids = [job.classId for job in jobs]
    connection.execute(sql.LEASE, {"ids": ids, "owner": owner, "until": until, "now": now})
    snapshots = {
        row.id: _snapshot(row) for row in connection.execute(sql.SNAPSHOT_ROWS, {"ids": ids})
    }
    parent_keys = sorted({s.parent_key for s in snapshots.values() if s.parent_key})
    parents: dict[tuple[str, str], tuple[str | None, str | None]] = {}
    if parent_keys:
        realms = sorted({job.realmId for job in jobs})
        parents = {
            (realm, key): (qb_id, status)
            for realm, key, qb_id, status in connection.execute(
                sql.PARENT_STATES, {"realms": realms, "keys": parent_keys}
            )
        }
    return [_claimed(job, snapshots[job.classId], parents) for job in jobs]


def one_level(jobs: list[Row[Any]]) -> list[Row[Any]]:
    """The shallowest of ``jobs`` (the engine's claims, which become one batch).

    A sub-class claimed with its parent cannot go in the parent's batch (it needs the parent's
    QBO Id) and was handed back alone, one transaction and one wake-up timer each: for the
    bench's families of one parent and nine sub-classes, 27 of every 30 Classes claimed. The
    deeper jobs stay pending, unleased, and are claimed together once their parents are done.
    """
    shallowest = min((job.depth for job in jobs), default=0)
    return [job for job in jobs if job.depth == shallowest]


def _due_jobs(
    connection: Connection, *, limit: int, now: datetime, realm_id: str | None
) -> list[Row[Any]]:
    """Lock up to ``limit`` due jobs: expired leases first, then pending jobs, parents first."""
    # Timestamps are stored with millisecond precision (Prisma's TIMESTAMP(3)) and may round up.
    due_by = now + timedelta(milliseconds=1)
    expired, pending = sql.CLAIM_EXPIRED, sql.CLAIM_PENDING
    params: dict[str, object] = {}
    if realm_id is not None:
        expired, pending = sql.CLAIM_EXPIRED_IN_REALM, sql.CLAIM_PENDING_IN_REALM
        params["realm_id"] = realm_id
    jobs = list(connection.execute(expired, {**params, "now": now, "limit": limit}))
    if len(jobs) < limit:
        jobs += connection.execute(
            pending, {**params, "due_by": due_by, "limit": limit - len(jobs)}
        )
    return jobs


def _snapshot(row: Row[Any]) -> ClassSnapshot:
    """A ``SNAPSHOT_ROWS`` row as the engine sees it."""
    path = split_full_name(row.fullName or row.name) or (row.name,)
    return ClassSnapshot(
        class_id=row.id,
        qb_id=row.qbId,
        name=row.name,
        # Rows without a key (Node rows whose name another row holds) get one from their name.
        key=row.fullNameKey or identity_key(path),
        is_active=row.isActive,
        is_sparse=row.isSparse,
        version_token=row.versionToken,
        full_name=join_path(path),
        base=None
        if row.qboName is None or row.qboActive is None
        else SideValues(row.qboName, row.qboParentId, row.qboActive),
    )


def _claimed(
    job: Row[Any],
    snapshot: ClassSnapshot,
    parents: dict[tuple[str, str], tuple[str | None, str | None]],
) -> ClaimedJob:
    parent_key = snapshot.parent_key
    return ClaimedJob(
        class_id=job.classId,
        realm_id=job.realmId,
        generation=job.generation,
        attempts=job.attempts,
        depth=job.depth,
        # A job taken over from an expired lease may have reached QBO already.
        outcome_unknown=bool(job.outcomeUnknown or job.status == _IN_PROGRESS),
        snapshot=snapshot,
        parent=None if parent_key is None else parents.get((job.realmId, parent_key), (None, None)),
    )
