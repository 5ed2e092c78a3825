"""Queries on QBClass and the sync-job outbox: batched upserts by identity, leased job claiming."""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, case, func, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import FromClause

from classsync.domain import (
    ClassInput,
    ErrorCode,
    QboClass,
    Rejection,
    SyncStatus,
    ValidClass,
    join_path,
    split_full_name,
)
from classsync.store.models import QBClass, SyncJob
from classsync.sync.ports import ClaimedJob, ClassSnapshot, JobState, StoredClass

# Job states in "ClasssyncJob"."status" (text, see models).
IN_PROGRESS = "IN_PROGRESS"
_CHUNK = 500  # bound the size of IN (...) lists


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


_BULK_SQL: dict[tuple[str, tuple[str, ...]], str] = {}


def _insert_rows(session: Session, source: FromClause, rows: list[dict[str, object]]) -> None:
    """Insert ``rows`` (dicts keyed by column name) in one statement on PostgreSQL.

    An executemany runs the INSERT (and its foreign-key check) once per row on the server and
    binds every value separately. On PostgreSQL the rows travel instead as one JSON array of
    arrays (``json.dumps`` is C code, and no column name is repeated per row) expanded by
    ``json_array_elements``; the statement text never changes, so it is built once and prepared
    once (docs/performance.md). Other databases keep the executemany.
    """
    if not rows:
        return
    table = cast(Table, source)  # a mapped class's __table__ is typed as its FromClause base
    bind = session.connection()
    if bind.dialect.name != "postgresql":
        session.execute(table.insert(), rows)
        return
    names = tuple(rows[0])
    key = (table.name, names)
    sql = _BULK_SQL.get(key)
    if sql is None:
        columns = ", ".join(f'"{name}"' for name in names)
        values = ", ".join(
            f"CAST(e->>{i} AS {table.c[name].type.compile(dialect=bind.dialect)})"
            for i, name in enumerate(names)
        )
        # Identifiers come from our own table metadata; the values travel as one bound text.
        sql = (
            f'INSERT INTO "{table.name}" ({columns}) SELECT {values} '  # noqa: S608
            "FROM json_array_elements(CAST(:rows AS json)) AS e"
        )
        _BULK_SQL[key] = sql
    payload = json.dumps([[row[name] for name in names] for row in rows], default=_json_value)
    session.execute(text(sql), {"rows": payload})


def _json_value(value: object) -> str:
    # Only datetimes reach here; ISO text is what PostgreSQL parses into TIMESTAMP(3).
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in a bulk insert")


def _key_of_row(row: QBClass) -> str:
    if row.full_name_key:
        return row.full_name_key
    return join_path(split_full_name(row.full_name or row.name) or (row.name,))


class ClassRepository:
    """QBClass rows: identity resolution (qbId, else fully-qualified name) and batched writes."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def save_batch(
        self, items: Sequence[ValidClass], realm_id: str, now: datetime
    ) -> list[StoredClass | Rejection]:
        """Upsert every Class of one ClassRequest, create missing ancestors, queue their jobs.

        Results are in input order. The caller owns the transaction (one per ClassRequest).
        """
        keys = {key for item in items for key in _keys_with_ancestors(item.path)}
        qb_ids = {item.qb_id for item in items if item.qb_id}
        by_key, by_qb_id = self._load(sorted(keys), sorted(qb_ids))

        inserts: dict[str, dict[str, object]] = {}
        updates: dict[str, dict[str, object]] = {}
        touched: dict[str, int] = {}  # class id -> depth; jobs to (re)queue
        new_placeholders: dict[str, int] = {}  # ancestors created here: queued, never re-queued
        results: list[str | Rejection] = []

        for item in items:
            row_id: str | None
            if item.qb_id:
                found = by_qb_id.get(item.qb_id)
                if found is None:
                    results.append(
                        Rejection(
                            ErrorCode.UNKNOWN_QB_ID,
                            f"no Class with qb_id {item.qb_id!r} is stored here; send it without "
                            "qb_id to create it, or with its full_name to link it by name",
                        )
                    )
                    continue
                row_id = found
                holder = by_key.get(item.key)
                if holder is not None and holder != row_id:
                    results.append(
                        Rejection(
                            ErrorCode.QB_ID_CONFLICT,
                            f"qb_id {item.qb_id!r} belongs to one Class and full name "
                            f"{item.key!r} to another; rename one of them first",
                        )
                    )
                    continue
            else:
                row_id = by_key.get(item.key)

            for depth, ancestor_key in enumerate(_keys_with_ancestors(item.path)[:-1], start=1):
                if ancestor_key not in by_key:
                    ancestor_id = str(uuid.uuid4())
                    by_key[ancestor_key] = ancestor_id
                    level = split_full_name(ancestor_key)[-1]
                    inserts[ancestor_id] = _row_values(
                        ancestor_id,
                        name=level,
                        full_name=ancestor_key,
                        key=ancestor_key,
                        is_sub_class=depth > 1,
                        is_active=True,
                        domain_source=item.domain_source,
                        version_token=0,
                        is_sparse=False,
                        now=now,
                    )
                    new_placeholders[ancestor_id] = depth

            values = {
                "name": item.name,
                "full_name": item.full_name,
                "key": item.key,
                "is_sub_class": item.is_sub_class,
                "is_active": item.is_active,
                "domain_source": item.domain_source,
                "is_sparse": item.is_sparse,
            }
            if row_id is None:
                row_id = str(uuid.uuid4())
                by_key[item.key] = row_id
                inserts[row_id] = _row_values(row_id, version_token=0, now=now, **values)  # type: ignore[arg-type]
            elif row_id in inserts:
                inserts[row_id].update(_row_values(row_id, version_token=0, now=now, **values))  # type: ignore[arg-type]
                new_placeholders.pop(row_id, None)
            else:
                by_key[item.key] = row_id  # may be a rename through qb_id
                updates[row_id] = {
                    "b_id": row_id,
                    "b_now": now,
                    **{f"b_{k}": v for k, v in values.items()},
                }
            touched[row_id] = item.depth
            results.append(row_id)

        self._write_rows(list(inserts.values()), list(updates.values()))
        generations = JobQueue(self._session).enqueue(
            touched, new_placeholders, realm_id=realm_id, now=now, fresh=inserts.keys()
        )
        return [
            r if isinstance(r, Rejection) else StoredClass(class_id=r, generation=generations[r])
            for r in results
        ]

    def _load(
        self, keys: Sequence[str], qb_ids: Sequence[str]
    ) -> tuple[dict[str, str], dict[str, str]]:
        by_key: dict[str, str] = {}
        by_qb_id: dict[str, str] = {}
        columns = (QBClass.id, QBClass.qb_id, QBClass.full_name_key)
        for chunk in _chunks(keys):
            for row_id, qb_id, key in self._session.execute(
                select(*columns).where(QBClass.full_name_key.in_(chunk))
            ):
                by_key[key] = row_id
                if qb_id:
                    by_qb_id[qb_id] = row_id
        for chunk in _chunks(qb_ids):
            for row_id, qb_id, key in self._session.execute(
                select(*columns).where(QBClass.qb_id.in_(chunk))
            ):
                by_qb_id[qb_id] = row_id
                if key:
                    by_key.setdefault(key, row_id)
        return by_key, by_qb_id

    def _write_rows(
        self, inserts: list[dict[str, object]], updates: list[dict[str, object]]
    ) -> None:
        _insert_rows(self._session, QBClass.__table__, inserts)
        if updates:
            table = _CLASS
            statement = (
                update(table)
                .where(table.c.id == bindparam("b_id"))
                .values(
                    {
                        table.c.name: bindparam("b_name"),
                        table.c.fullName: bindparam("b_full_name"),
                        table.c.fullNameKey: bindparam("b_key"),
                        table.c.isSubClass: bindparam("b_is_sub_class"),
                        table.c.isActive: bindparam("b_is_active"),
                        table.c.domainSource: bindparam("b_domain_source"),
                        table.c.isSparse: bindparam("b_is_sparse"),
                        table.c.updatedAt: bindparam("b_now"),
                    }
                )
            )
            self._session.connection().execute(statement, updates)

    def find_by_key(self, key: str) -> QBClass | None:
        """The row whose fully-qualified name (QBO form) is ``key``."""
        return self._session.scalars(select(QBClass).where(QBClass.full_name_key == key)).first()

    def find_by_qb_id(self, qb_id: str) -> QBClass | None:
        """The row linked to QBO Id ``qb_id``."""
        return self._session.scalars(select(QBClass).where(QBClass.qb_id == qb_id)).first()

    def get(self, class_id: str) -> QBClass | None:
        """The row with local id ``class_id``."""
        return self._session.get(QBClass, class_id)


def _keys_with_ancestors(path: tuple[str, ...]) -> list[str]:
    return [join_path(path[: i + 1]) for i in range(len(path))]


def _row_values(
    row_id: str,
    *,
    name: str,
    full_name: str | None,
    key: str,
    is_sub_class: bool,
    is_active: bool,
    domain_source: str | None,
    version_token: int,
    is_sparse: bool,
    now: datetime,
) -> dict[str, object]:
    # Keys are column names (Core insert): the quoted camelCase names of the Node table.
    return {
        "id": row_id,
        "qbId": None,
        "name": name,
        "fullName": full_name,
        "fullNameKey": key,
        "isSubClass": is_sub_class,
        "isActive": is_active,
        "domainSource": domain_source,
        "versionToken": version_token,
        "isSparse": is_sparse,
        "createdAt": now,
        "updatedAt": now,
    }


# The engine's hot statements, built once: SQLAlchemy memoises a statement object's cache key,
# so reusing these skips re-deriving it on every claim and outcome (about a tenth of the engine's
# CPU when they were built per call; docs/performance.md).
_JOB = cast(Table, SyncJob.__table__)
_CLASS = cast(Table, QBClass.__table__)
_JOB_COLUMNS = (
    _JOB.c.classId,
    _JOB.c.realmId,
    _JOB.c.generation,
    _JOB.c.attempts,
    _JOB.c.depth,
    _JOB.c.outcomeUnknown,
    _JOB.c.status,
)
_CLAIM_EXPIRED = (
    select(*_JOB_COLUMNS)
    .where(_JOB.c.status == IN_PROGRESS, _JOB.c.leaseExpiresAt < bindparam("now"))
    .order_by(_JOB.c.depth)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_CLAIM_PENDING = (
    select(*_JOB_COLUMNS)
    .where(_JOB.c.status == SyncStatus.PENDING.value, _JOB.c.nextAttemptAt <= bindparam("due_by"))
    .order_by(_JOB.c.depth, _JOB.c.nextAttemptAt)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_LEASE = (
    update(_JOB)
    .where(_JOB.c.classId.in_(bindparam("ids", expanding=True)))
    .values(
        {
            # A job reclaimed from a dead worker may have reached QBO: its outcome is unknown.
            _JOB.c.outcomeUnknown: _JOB.c.outcomeUnknown | (_JOB.c.status == IN_PROGRESS),
            _JOB.c.status: IN_PROGRESS,
            _JOB.c.leaseOwner: bindparam("owner"),
            _JOB.c.leaseExpiresAt: bindparam("until"),
            _JOB.c.updatedAt: bindparam("now"),
        }
    )
)
_SNAPSHOT_ROWS = select(
    _CLASS.c.id,
    _CLASS.c.qbId,
    _CLASS.c.name,
    _CLASS.c.fullName,
    _CLASS.c.fullNameKey,
    _CLASS.c.isActive,
    _CLASS.c.isSparse,
    _CLASS.c.versionToken,
).where(_CLASS.c.id.in_(bindparam("ids", expanding=True)))
_PARENT_STATES = (
    select(_CLASS.c.fullNameKey, _CLASS.c.qbId, _JOB.c.status)
    .select_from(_CLASS.outerjoin(_JOB, _JOB.c.classId == _CLASS.c.id))
    .where(_CLASS.c.fullNameKey.in_(bindparam("keys", expanding=True)))
)
_LINK = (
    update(_CLASS)
    .where(_CLASS.c.id == bindparam("class_id"))
    .values(
        {
            _CLASS.c.qbId: bindparam("qb_id"),
            _CLASS.c.versionToken: bindparam("token"),
            _CLASS.c.updatedAt: bindparam("now"),
        }
    )
)
_OWNED = and_(
    _JOB.c.classId == bindparam("class_id"),
    _JOB.c.leaseOwner == bindparam("owner"),
    _JOB.c.status == IN_PROGRESS,
)
_RELEASED: dict[Any, Any] = {
    _JOB.c.outcomeUnknown: False,
    _JOB.c.leaseOwner: None,
    _JOB.c.leaseExpiresAt: None,
    _JOB.c.lastErrorCode: None,
    _JOB.c.lastErrorMessage: None,
    _JOB.c.updatedAt: bindparam("now"),
}
_FINISH = (
    update(_JOB)
    .where(_OWNED, _JOB.c.generation == bindparam("job_generation"))
    .values(
        {**_RELEASED, _JOB.c.status: SyncStatus.SYNCED.value, _JOB.c.syncedAt: bindparam("now")}
    )
)
_REQUEUE_NEWER = (
    update(_JOB)
    .where(_OWNED)
    .values(
        {
            **_RELEASED,
            _JOB.c.status: SyncStatus.PENDING.value,
            _JOB.c.attempts: 0,
            _JOB.c.nextAttemptAt: bindparam("now"),
        }
    )
)


class JobQueue:
    """The outbox: one job row per Class, leased to one worker at a time."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def enqueue(
        self,
        touched: dict[str, int],
        placeholders: dict[str, int],
        *,
        realm_id: str,
        now: datetime,
        fresh: Collection[str] = (),
    ) -> dict[str, int]:
        """(Re)queue jobs and return each touched class's generation.

        A job being worked on keeps its lease: only its generation moves on, and the worker that
        holds it re-queues it when it finishes (so two workers never write one Class at once).
        ``fresh`` are classes inserted in this transaction: they cannot have a job yet, so they
        are not looked up (most of a new stream's Classes).
        """
        ids = list({*touched, *placeholders})
        fresh = set(fresh)
        existing: set[str] = set()
        for chunk in _chunks([i for i in ids if i not in fresh]):
            existing.update(
                self._session.scalars(select(SyncJob.class_id).where(SyncJob.class_id.in_(chunk)))
            )
        new_rows = [
            {
                "classId": class_id,
                "realmId": realm_id,
                "status": SyncStatus.PENDING.value,
                "generation": 1,
                "depth": touched.get(class_id) or placeholders[class_id],
                "attempts": 0,
                "nextAttemptAt": now,
                "outcomeUnknown": False,
                "createdAt": now,
                "updatedAt": now,
            }
            for class_id in ids
            if class_id not in existing
        ]
        _insert_rows(self._session, SyncJob.__table__, new_rows)
        requeue = [
            {"b_id": class_id, "b_depth": depth, "b_now": now}
            for class_id, depth in touched.items()
            if class_id in existing
        ]
        if requeue:
            table = _JOB
            self._session.connection().execute(
                update(table)
                .where(table.c.classId == bindparam("b_id"))
                .values(
                    {
                        table.c.generation: table.c.generation + 1,
                        table.c.status: case(
                            (table.c.status == IN_PROGRESS, IN_PROGRESS),
                            else_=SyncStatus.PENDING.value,
                        ),
                        table.c.depth: bindparam("b_depth"),
                        table.c.attempts: 0,
                        table.c.nextAttemptAt: bindparam("b_now"),
                        table.c.lastErrorCode: None,
                        table.c.lastErrorMessage: None,
                        table.c.updatedAt: bindparam("b_now"),
                    }
                ),
                requeue,
            )
        # A job inserted just now is at generation 1; only re-queued ones need reading back.
        generations = {class_id: 1 for class_id in touched if class_id not in existing}
        wanted = [class_id for class_id in touched if class_id in existing]
        for chunk in _chunks(wanted):
            generations.update(
                (class_id, generation)
                for class_id, generation in self._session.execute(
                    select(SyncJob.class_id, SyncJob.generation).where(SyncJob.class_id.in_(chunk))
                )
            )
        return generations

    def claim(
        self,
        *,
        owner: str,
        limit: int,
        lease: timedelta,
        now: datetime,
        realm_id: str | None = None,
    ) -> list[ClaimedJob]:
        """Lease up to ``limit`` due jobs, shallowest first (parents before children).

        Due = pending and past its next attempt time, or in progress with an expired lease (its
        worker died). PostgreSQL and MariaDB skip rows other replicas hold (FOR UPDATE SKIP LOCKED);
        SQLite serialises writers, so it is single-process only.
        """
        # Timestamps are stored with millisecond precision (Prisma's TIMESTAMP(3)) and may round up.
        due_by = now + timedelta(milliseconds=1)
        if realm_id is not None:
            return self._claim_in_realm(
                owner=owner, limit=limit, lease=lease, now=now, realm_id=realm_id
            )
        # Two simple queries rather than one with OR: each walks an index in order and stops at
        # ``limit`` (status, depth, nextAttemptAt for pending jobs), instead of sorting every due
        # row on each claim.
        connection = self._session.connection()
        jobs = list(connection.execute(_CLAIM_EXPIRED, {"now": now, "limit": limit}))
        if len(jobs) < limit:
            jobs += connection.execute(
                _CLAIM_PENDING, {"due_by": due_by, "limit": limit - len(jobs)}
            )
        if not jobs:
            return []
        ids = [job.classId for job in jobs]
        connection.execute(_LEASE, {"ids": ids, "owner": owner, "until": now + lease, "now": now})
        snapshots = {
            row.id: ClassSnapshot(
                class_id=row.id,
                qb_id=row.qbId,
                name=row.name,
                key=row.fullNameKey
                or join_path(split_full_name(row.fullName or row.name) or (row.name,)),
                is_active=row.isActive,
                is_sparse=row.isSparse,
                version_token=row.versionToken,
            )
            for row in connection.execute(_SNAPSHOT_ROWS, {"ids": ids})
        }
        parent_keys = sorted({s.parent_key for s in snapshots.values() if s.parent_key})
        parents: dict[str, tuple[str | None, str | None]] = {}
        if parent_keys:
            parents = {
                key: (qb_id, status)
                for key, qb_id, status in connection.execute(_PARENT_STATES, {"keys": parent_keys})
            }
        claimed = []
        for job in jobs:
            snapshot = snapshots[job.classId]
            parent_key = snapshot.parent_key
            claimed.append(
                ClaimedJob(
                    class_id=job.classId,
                    realm_id=job.realmId,
                    generation=job.generation,
                    attempts=job.attempts,
                    depth=job.depth,
                    outcome_unknown=bool(job.outcomeUnknown or job.status == IN_PROGRESS),
                    snapshot=snapshot,
                    parent=None if parent_key is None else parents.get(parent_key, (None, None)),
                )
            )
        return claimed

    def _claim_in_realm(
        self, *, owner: str, limit: int, lease: timedelta, now: datetime, realm_id: str
    ) -> list[ClaimedJob]:
        """The claim restricted to one realm (tools and tests; the engine claims across realms)."""
        due_by = now + timedelta(milliseconds=1)
        expired = select(SyncJob).where(
            SyncJob.status == IN_PROGRESS,
            SyncJob.lease_expires_at < now,
            SyncJob.realm_id == realm_id,
        )
        pending = select(SyncJob).where(
            SyncJob.status == SyncStatus.PENDING.value,
            SyncJob.next_attempt_at <= due_by,
            SyncJob.realm_id == realm_id,
        )
        jobs = list(
            self._session.scalars(
                expired.order_by(SyncJob.depth).limit(limit).with_for_update(skip_locked=True)
            )
        )
        if len(jobs) < limit:
            jobs += self._session.scalars(
                pending.order_by(SyncJob.depth, SyncJob.next_attempt_at)
                .limit(limit - len(jobs))
                .with_for_update(skip_locked=True)
            )
        claimed = []
        for job in jobs:
            if job.status == IN_PROGRESS:
                job.outcome_unknown = True
            job.status = IN_PROGRESS
            job.lease_owner = owner
            job.lease_expires_at = now + lease
            job.updated_at = now
            row = self._session.get(QBClass, job.class_id)
            assert row is not None  # the job's foreign key guarantees it
            snapshot = _snapshot(row)
            claimed.append(
                ClaimedJob(
                    class_id=job.class_id,
                    realm_id=job.realm_id,
                    generation=job.generation,
                    attempts=job.attempts,
                    depth=job.depth,
                    outcome_unknown=job.outcome_unknown,
                    snapshot=snapshot,
                    parent=None
                    if snapshot.parent_key is None
                    else self.parent_state(snapshot.parent_key),
                )
            )
        self._session.flush()
        return claimed

    def _relax_commit(self) -> None:
        """Commit this outcome without waiting for the disk flush (PostgreSQL only).

        Safe by construction: if the database itself crashes and loses the last outcome writes,
        those jobs are back IN_PROGRESS under a lease that expires, and are reclaimed as "outcome
        unknown" (looked up by name before any create). Claims and ingest stay fully durable.
        """
        if self._session.get_bind().dialect.name == "postgresql":
            self._session.execute(text("SET LOCAL synchronous_commit TO OFF"))

    def _owned(self, class_id: str, owner: str) -> SyncJob | None:
        job = self._session.get(SyncJob, class_id, with_for_update=True)
        if job is None or job.lease_owner != owner or job.status != IN_PROGRESS:
            return None  # our lease expired and someone else took it over: leave it to them
        return job

    def record_synced(
        self, claimed: ClaimedJob, owner: str, qbo: QboClass, now: datetime
    ) -> JobState | None:
        """Store QBO's Id and SyncToken; finish the job unless the Class changed meanwhile.

        Returns the job's new state, or None when our lease was lost (someone else owns the job
        now). The link is stored either way: QBO holds the class. Plain UPDATEs (no read-back),
        QBClass before the job row: the lock order ingest uses, so the two never deadlock.
        """
        self._relax_commit()
        token = _sync_token_int(qbo.sync_token)
        connection = self._session.connection()
        params = {
            "class_id": claimed.class_id,
            "owner": owner,
            "job_generation": claimed.generation,
            "qb_id": qbo.id,
            "token": token,
            "now": now,
        }
        connection.execute(_LINK, params)
        status = SyncStatus.SYNCED.value
        if not connection.execute(_FINISH, params).rowcount:
            # The caller sent a newer version while we synced this one: queue it again.
            if not connection.execute(_REQUEUE_NEWER, params).rowcount:
                return None
            status = SyncStatus.PENDING.value
        return JobState(
            class_id=claimed.class_id,
            status=status,
            generation=claimed.generation,
            qb_id=qbo.id,
            version_token=token,
            error_code=None,
            error_message=None,
        )

    def record_link(self, claimed: ClaimedJob, qbo: QboClass, now: datetime) -> None:
        """Link the row to an existing QBO class (found by name) before updating it."""
        row = self._session.get(QBClass, claimed.class_id)
        if row is not None:
            row.qb_id = qbo.id
            row.version_token = _sync_token_int(qbo.sync_token)
            row.updated_at = now

    def record_version(self, class_id: str, sync_token: str, now: datetime) -> None:
        """Remember the SyncToken re-read from QBO (after a 5010)."""
        row = self._session.get(QBClass, class_id)
        if row is not None:
            row.version_token = _sync_token_int(sync_token)
            row.updated_at = now

    def retry_later(
        self,
        claimed: ClaimedJob,
        owner: str,
        *,
        at: datetime,
        error_code: str,
        error_message: str,
        count_attempt: bool,
        outcome_unknown: bool,
        now: datetime,
    ) -> None:
        """Give the job back to the queue for a later attempt."""
        self._relax_commit()
        job = self._owned(claimed.class_id, owner)
        if job is None:
            return
        job.status = SyncStatus.PENDING.value
        job.lease_owner = None
        job.lease_expires_at = None
        job.next_attempt_at = now if job.generation != claimed.generation else at
        if count_attempt:
            job.attempts += 1
        job.outcome_unknown = job.outcome_unknown or outcome_unknown
        job.last_error_code = error_code
        job.last_error_message = error_message[:2000]
        job.updated_at = now

    def record_failed(
        self, claimed: ClaimedJob, owner: str, *, error_code: str, error_message: str, now: datetime
    ) -> None:
        """QBO refused the Class for good (or attempts ran out): mark it FAILED with the reason."""
        self._relax_commit()
        job = self._owned(claimed.class_id, owner)
        if job is None:
            return
        job.lease_owner = None
        job.lease_expires_at = None
        job.last_error_code = error_code
        job.last_error_message = error_message[:2000]
        job.updated_at = now
        if job.generation == claimed.generation:
            job.status = SyncStatus.FAILED.value
            job.attempts += 1
        else:  # the caller sent a newer version meanwhile: try that one
            job.status = SyncStatus.PENDING.value
            job.attempts = 0
            job.next_attempt_at = now

    def release_jobs(self, owner: str, class_ids: Sequence[str], now: datetime) -> int:
        """Hand back some of ``owner``'s leased jobs untouched (no attempt counted)."""
        if not class_ids:
            return 0
        result = self._session.execute(
            update(SyncJob)
            .where(
                SyncJob.lease_owner == owner,
                SyncJob.status == IN_PROGRESS,
                SyncJob.class_id.in_(list(class_ids)),
            )
            .values(
                status=SyncStatus.PENDING.value,
                lease_owner=None,
                lease_expires_at=None,
                next_attempt_at=now,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def release(self, owner: str, now: datetime) -> int:
        """Hand back every lease ``owner`` holds (graceful stop); returns how many."""
        result = self._session.execute(
            update(SyncJob)
            .where(SyncJob.lease_owner == owner, SyncJob.status == IN_PROGRESS)
            .values(
                status=SyncStatus.PENDING.value,
                lease_owner=None,
                lease_expires_at=None,
                updated_at=now,
            )
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def extend_leases(self, owner: str, class_ids: Sequence[str], *, until: datetime) -> int:
        """Push the leases ``owner`` still holds on ``class_ids`` out to ``until``; how many.

        A worker still busy with a job (waiting for a QBO slot, or in a slow call) keeps it, so
        no other worker reclaims it as "outcome unknown" and writes it a second time. Rows are
        locked in id order, and ``updatedAt`` is left alone (it dates the job's last change).
        """
        extended = 0
        for chunk in _chunks(sorted(class_ids)):
            result = self._session.execute(
                update(SyncJob)
                .where(
                    SyncJob.class_id.in_(chunk),
                    SyncJob.lease_owner == owner,
                    SyncJob.status == IN_PROGRESS,
                )
                .values(lease_expires_at=until)
            )
            extended += int(result.rowcount or 0)  # type: ignore[attr-defined]
        return extended

    def states(self, class_ids: Sequence[str]) -> dict[str, JobState]:
        """Current job state and QBO link of each Class."""
        out: dict[str, JobState] = {}
        for chunk in _chunks(list(class_ids)):
            query = (
                select(
                    SyncJob.class_id,
                    SyncJob.status,
                    SyncJob.generation,
                    QBClass.qb_id,
                    QBClass.version_token,
                    SyncJob.last_error_code,
                    SyncJob.last_error_message,
                )
                .join(QBClass, QBClass.id == SyncJob.class_id)
                .where(SyncJob.class_id.in_(chunk))
            )
            for row in self._session.execute(query):
                out[row[0]] = JobState(*row)
        return out

    def _parent_states(self, keys: set[str]) -> dict[str, tuple[str | None, str | None]]:
        if not keys:
            return {}
        found = self._session.execute(
            select(QBClass.full_name_key, QBClass.qb_id, SyncJob.status)
            .outerjoin(SyncJob, SyncJob.class_id == QBClass.id)
            .where(QBClass.full_name_key.in_(sorted(keys)))
        )
        return {key: (qb_id, status) for key, qb_id, status in found}

    def parent_state(self, parent_key: str) -> tuple[str | None, str | None]:
        """(QBO Id, job status) of the Class at ``parent_key``; (None, None) if unknown."""
        row = self._session.execute(
            select(QBClass.qb_id, SyncJob.status)
            .outerjoin(SyncJob, SyncJob.class_id == QBClass.id)
            .where(QBClass.full_name_key == parent_key)
        ).first()
        if row is None:
            return None, None
        return row[0], row[1]

    def counts(self) -> dict[str, int]:
        """Number of jobs per status."""
        return {
            status: int(count)
            for status, count in self._session.execute(
                select(SyncJob.status, func.count()).group_by(SyncJob.status)
            )
        }

    def oldest_pending(self) -> datetime | None:
        """Creation time of the oldest job not yet synced."""
        return self._session.scalar(
            select(func.min(SyncJob.updated_at)).where(
                SyncJob.status.in_([SyncStatus.PENDING.value, IN_PROGRESS])
            )
        )

    def requeue(self, *, failed_only: bool, class_ids: Sequence[str], now: datetime) -> int:
        """Put FAILED (and, unless ``failed_only``, any) jobs back in the queue with fresh attempts."""
        statement = update(SyncJob).values(
            status=SyncStatus.PENDING.value,
            attempts=0,
            next_attempt_at=now,
            updated_at=now,
            generation=SyncJob.generation + 1,
        )
        if failed_only or not class_ids:
            statement = statement.where(SyncJob.status == SyncStatus.FAILED.value)
        else:
            statement = statement.where(SyncJob.status != IN_PROGRESS)
        if class_ids:
            statement = statement.where(SyncJob.class_id.in_(list(class_ids)))
        return int(self._session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]


def _snapshot(row: QBClass) -> ClassSnapshot:
    return ClassSnapshot(
        class_id=row.id,
        qb_id=row.qb_id,
        name=row.name,
        key=_key_of_row(row),
        is_active=row.is_active,
        is_sparse=row.is_sparse,
        version_token=row.version_token,
    )


def _sync_token_int(sync_token: str) -> int:
    # QBO's SyncToken is a decimal string (qbo-reference §1.1); the Node column is an Int.
    try:
        return int(sync_token)
    except ValueError:
        return 0


__all__ = [
    "ClaimedJob",
    "ClassInput",
    "ClassRepository",
    "ClassSnapshot",
    "JobQueue",
    "JobState",
    "StoredClass",
]
