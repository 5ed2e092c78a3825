"""Local rows as changes read back from QBO see and write them, and the CDC marks."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from classsync.domain import (
    LocalClass,
    RemoteApply,
    SideValues,
    SyncStatus,
    identity_key,
    join_path,
    qbo_path,
    split_full_name,
)
from classsync.store.models import CdcMark, QBClass, SyncJob

log = structlog.get_logger(__name__)

_CHUNK = 500  # bound the size of IN (...) lists
# A row whose parent has no QBO Id yet: its parent differs from anything QBO holds.
_UNSYNCED_PARENT = "local:"


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _token(sync_token: str) -> int:
    try:
        return int(sync_token)
    except ValueError:
        return 0


class RemoteChangeRepository:
    """``sync.ports.RemoteChangeStore`` on SQLAlchemy."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def local_classes(
        self, realm_id: str, qb_ids: Sequence[str], keys: Sequence[str]
    ) -> tuple[dict[str, LocalClass], dict[str, LocalClass]]:
        """Rows linked to ``qb_ids`` and rows at ``keys``, with their job's status.

        Only the realm's rows: a QBO Id or a full name names a Class inside one company.
        """
        rows: dict[str, tuple[QBClass, SyncJob | None]] = {}
        identities = [key.casefold() for key in keys]  # stored keys are case-folded
        for column, values in ((QBClass.qb_id, qb_ids), (QBClass.full_name_key, identities)):
            for chunk in _chunks(sorted(set(values))):
                query = (
                    select(QBClass, SyncJob)
                    .outerjoin(SyncJob, SyncJob.class_id == QBClass.id)
                    .where(QBClass.realm_id == realm_id, column.in_(chunk))
                )
                for row, found in self._session.execute(query).tuples():
                    rows[row.id] = (row, found)
        parents = self._parent_ids(
            realm_id, {_parent_key(row) for row, _ in rows.values()} - {None}
        )
        by_qb_id: dict[str, LocalClass] = {}
        by_key: dict[str, LocalClass] = {}
        for row, job in rows.values():
            local = _local(row, job, parents)
            if row.qb_id:
                by_qb_id[row.qb_id] = local
            by_key[local.key.casefold()] = local
        return by_qb_id, by_key

    def _parent_ids(self, realm_id: str, keys: set[str | None]) -> dict[str, str | None]:
        wanted = sorted(k for k in keys if k)
        found: dict[str, str | None] = {}
        for chunk in _chunks(wanted):
            query = select(QBClass.full_name_key, QBClass.qb_id).where(
                QBClass.realm_id == realm_id, QBClass.full_name_key.in_(chunk)
            )
            found.update(
                {key: qb_id for key, qb_id in self._session.execute(query).tuples() if key}
            )
        return found

    def apply(self, change: RemoteApply, now: datetime) -> bool:
        """Write one decided change; False (nothing written) when its full name is taken."""
        if change.local is None:
            return self._insert(change, now)
        row = self._session.get(QBClass, change.local.class_id, with_for_update=True)
        if row is None:
            return False
        old_key, new_key = row.full_name_key, change.key.casefold()
        if new_key != old_key and self._key_holder(change.realm_id, new_key, row.id) is not None:
            log.warning(
                "remote_change_name_taken",
                realm_id=change.realm_id,
                qb_id=change.remote.id,
                full_name=change.key,
            )
            return False
        remote = change.remote
        path = qbo_path(change.key)
        row.qb_id = remote.id
        if new_key != old_key or row.name != change.values.name:
            row.full_name = change.key
            row.full_name_key = new_key
        row.name = change.values.name
        row.is_sub_class = len(path) > 1
        row.is_active = change.values.active
        row.version_token = _token(remote.sync_token)
        row.qbo_name = remote.name
        row.qbo_parent_id = remote.parent_id or None
        row.qbo_active = remote.active
        if change.edited_in_qbo:
            row.qbo_edited_at = now
        row.updated_at = now
        self._session.flush()
        if old_key and new_key != old_key:
            self._move_descendants(change.realm_id, old_key, change.key, now)
        self._settle_job(row.id, change, len(path), now)
        return True

    def _insert(self, change: RemoteApply, now: datetime) -> bool:
        remote = change.remote
        taken = self._key_holder(change.realm_id, change.key.casefold(), None)
        linked = self._session.scalar(
            select(QBClass.id).where(
                QBClass.realm_id == change.realm_id, QBClass.qb_id == remote.id
            )
        )
        if taken is not None or linked is not None:
            log.warning(
                "remote_change_name_taken",
                realm_id=change.realm_id,
                qb_id=remote.id,
                full_name=change.key,
            )
            return False
        path = qbo_path(change.key)
        row = QBClass(
            id=str(uuid.uuid4()),
            realm_id=change.realm_id,
            qb_id=remote.id,
            name=remote.name,
            full_name=change.key,
            full_name_key=change.key.casefold(),
            is_sub_class=len(path) > 1,
            is_active=remote.active,
            domain_source="QBO",
            version_token=_token(remote.sync_token),
            is_sparse=False,
            qbo_name=remote.name,
            qbo_parent_id=remote.parent_id or None,
            qbo_active=remote.active,
            qbo_edited_at=now,
            created_at=now,
            updated_at=now,
        )
        self._session.add(row)
        self._session.flush()
        self._session.add(_synced_job(row.id, change.realm_id, len(path), now))
        self._session.flush()
        return True

    def _key_holder(self, realm_id: str, key: str, other_than: str | None) -> str | None:
        query = select(QBClass.id).where(QBClass.realm_id == realm_id, QBClass.full_name_key == key)
        if other_than is not None:
            query = query.where(QBClass.id != other_than)
        return self._session.scalar(query)

    def _move_descendants(
        self, realm_id: str, old_key: str, new_full_name: str, now: datetime
    ) -> None:
        """QBO reports only the renamed or moved Class: its sub-classes' full names follow here.

        ``old_key`` is the parent's former (case-folded) key, ``new_full_name`` its new full
        name in QBO form and casing.
        """
        prefix, levels = old_key + ":", len(qbo_path(old_key))
        query = select(QBClass).where(
            QBClass.realm_id == realm_id,
            QBClass.full_name_key.startswith(prefix, autoescape=True),
        )
        for child in self._session.scalars(query):
            below = _cased_path(child)[levels:]
            moved = join_path((*qbo_path(new_full_name), *below))
            child.full_name = moved
            child.full_name_key = moved.casefold()
            child.updated_at = now
            job = self._session.get(SyncJob, child.id)
            if job is not None:
                job.depth = len(qbo_path(moved))
        self._session.flush()

    def _settle_job(self, class_id: str, change: RemoteApply, depth: int, now: datetime) -> None:
        job = self._session.get(SyncJob, class_id, with_for_update=True)
        if job is None:  # a row the Node service wrote: it gets its job now, already in sync
            self._session.add(_synced_job(class_id, change.realm_id, depth, now))
            return
        job.depth = depth
        # A job a worker holds is left to it: it finds QBO's newer SyncToken when it writes.
        if change.settled and job.status in (SyncStatus.PENDING.value, SyncStatus.FAILED.value):
            job.status = SyncStatus.SYNCED.value
            job.attempts = 0
            job.outcome_unknown = False
            job.last_error_code = None
            job.last_error_message = None
            job.synced_at = now
            job.updated_at = now

    def cdc_mark(self, realm_id: str) -> datetime | None:
        """The realm's next ``changedSince``; None when it was never polled."""
        mark = self._session.get(CdcMark, realm_id)
        return None if mark is None else mark.changed_since

    def set_cdc_mark(self, realm_id: str, changed_since: datetime, now: datetime) -> None:
        """Move the realm's mark; never backwards (two pollers may race)."""
        mark = self._session.get(CdcMark, realm_id, with_for_update=True)
        if mark is None:
            self._session.add(
                CdcMark(realm_id=realm_id, changed_since=changed_since, updated_at=now)
            )
        elif changed_since > mark.changed_since:
            mark.changed_since = changed_since
            mark.updated_at = now
        self._session.flush()


def _cased_path(row: QBClass) -> tuple[str, ...]:
    """The row's levels in their stored casing (``fullNameKey`` is case-folded)."""
    for levels in (split_full_name(row.full_name or ""), (row.name,)):
        if levels and (row.full_name_key is None or identity_key(levels) == row.full_name_key):
            return levels
    return qbo_path(row.full_name_key or row.name)


def _parent_key(row: QBClass) -> str | None:
    """The parent's identity key (case-folded, as stored)."""
    path = qbo_path(row.full_name_key) if row.full_name_key else _cased_path(row)
    return identity_key(path[:-1]) if len(path) > 1 else None


def _local(row: QBClass, job: SyncJob | None, parents: dict[str, str | None]) -> LocalClass:
    key = join_path(_cased_path(row))
    parent_key = _parent_key(row)
    parent_id: str | None = None
    if parent_key is not None:
        parent_id = parents.get(parent_key) or _UNSYNCED_PARENT + parent_key
    base = None
    if row.qbo_name is not None and row.qbo_active is not None:
        base = SideValues(row.qbo_name, row.qbo_parent_id, row.qbo_active)
    return LocalClass(
        class_id=row.id,
        qb_id=row.qb_id,
        key=key,
        current=SideValues(row.name, parent_id, row.is_active),
        base=base,
        version_token=row.version_token,
        job_status=None if job is None else job.status,
        qbo_edited_at=row.qbo_edited_at,
    )


def _synced_job(class_id: str, realm_id: str, depth: int, now: datetime) -> SyncJob:
    return SyncJob(
        class_id=class_id,
        realm_id=realm_id,
        status=SyncStatus.SYNCED.value,
        generation=1,
        depth=depth,
        attempts=0,
        next_attempt_at=now,
        synced_at=now,
        created_at=now,
        updated_at=now,
    )


__all__ = ["RemoteChangeRepository"]
