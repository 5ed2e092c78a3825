"""QBClass rows: load what a request's Classes could be, write what ``plan_upsert`` decided."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, func, or_, select, update
from sqlalchemy.orm import Session

from classsync.domain import (
    ClassInput,
    KnownRows,
    Placeholder,
    Rejection,
    StoredRow,
    ValidClass,
    lookup_keys,
    plan_upsert,
)
from classsync.store.bulk_insert import insert_rows
from classsync.store.class_lookup import rows_by
from classsync.store.job_queue import JobQueue
from classsync.store.models import QBClass, SyncJob
from classsync.store.statements import CLASS, UPDATE_CLASS
from classsync.sync.ports import AdoptionCandidate, JobStatus, StoredClass


class ClassRepository:
    """QBClass rows, stored by identity (qbId, else fully-qualified name), in batches."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def save_batch(
        self, items: Sequence[ValidClass], realm_id: str, now: datetime
    ) -> list[StoredClass | Rejection]:
        """Upsert every Class of one ClassRequest, create missing ancestors, queue their jobs.

        Results are in input order. The caller owns the transaction (one per ClassRequest).
        """
        known, generations_now = self._load(realm_id, *lookup_keys(items))
        plan = plan_upsert(items, known)
        insert_rows(
            self._session,
            CLASS,
            [_insert_values(row_id, row, realm_id, now) for row_id, row in plan.inserts.items()],
        )
        if plan.updates:
            self._session.connection().execute(
                UPDATE_CLASS,
                [
                    _update_values(row_id, row, plan.sent.get(row_id, row), now)
                    for row_id, row in plan.updates.items()
                ],
            )
        generations = JobQueue(self._session).enqueue(
            plan.queue, plan.placeholders, realm_id=realm_id, now=now, fresh=plan.inserts.keys()
        )
        # An identical resend of a synced Class keeps its job's generation (already SYNCED).
        generations.update({r: generations_now[r] for r in plan.unchanged})
        return [
            r
            if isinstance(r, Rejection)
            else StoredClass(
                class_id=r,
                generation=generations[r],
                overwrites_qbo_edit=plan.overwrites.get(r, ()),
            )
            for r in plan.results
        ]

    def adoption_candidates(
        self, realm_id: str, *, after: str | None, limit: int
    ) -> list[AdoptionCandidate]:
        """The realm's rows with no key, or no qbId and no job: in id order, ``limit`` after
        id ``after``."""
        query = (
            select(QBClass, SyncJob.class_id)
            .outerjoin(SyncJob, SyncJob.class_id == QBClass.id)
            .where(
                QBClass.realm_id == realm_id,
                or_(
                    QBClass.full_name_key.is_(None),
                    and_(QBClass.qb_id.is_(None), SyncJob.class_id.is_(None)),
                ),
            )
            .order_by(QBClass.id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(QBClass.id > after)
        return [_candidate(row, job_id is not None) for row, job_id in self._session.execute(query)]

    def assign_key(self, class_id: str, key: str) -> bool:
        """Give a keyless row its identity key; False (nothing written) if another row of its
        realm holds it."""
        realm_id = select(QBClass.realm_id).where(QBClass.id == class_id).scalar_subquery()
        taken = select(QBClass.id).where(QBClass.full_name_key == key, QBClass.realm_id == realm_id)
        if self._session.scalar(taken):
            return False
        self._session.execute(
            update(QBClass)
            .where(QBClass.id == class_id, QBClass.full_name_key.is_(None))
            .values(full_name_key=key)
        )
        return True

    def count_unsynced_without_job(self) -> int:
        """How many rows have no qbId and no job."""
        query = (
            select(func.count())
            .select_from(QBClass)
            .outerjoin(SyncJob, SyncJob.class_id == QBClass.id)
            .where(QBClass.qb_id.is_(None), SyncJob.class_id.is_(None))
        )
        return int(self._session.scalar(query) or 0)

    def _load(
        self, realm_id: str, keys: Sequence[str], qb_ids: Sequence[str]
    ) -> tuple[KnownRows, dict[str, int]]:
        """The realm's stored rows holding any of ``keys`` (full names) or ``qb_ids``, and their
        jobs' generations. Identity is per realm: a QBO Id or a full name names a Class only
        inside one company."""
        by_key: dict[str, str] = {}
        by_qb_id: dict[str, str] = {}
        stored: dict[str, StoredRow] = {}
        generations: dict[str, int] = {}
        connection = self._session.connection()
        # A row renamed or moved in QBO is found under the name the caller last sent too; a row
        # holding that name now comes first (setdefault, full names before caller keys).
        lookups = (("fullNameKey", keys), ("callerKey", keys), ("qbId", qb_ids))
        for column, values in lookups:
            for row in rows_by(connection, realm_id, column, values):
                if row.fullNameKey:
                    by_key.setdefault(row.fullNameKey, row.id)
                if column == "callerKey" and row.callerKey:
                    by_key.setdefault(row.callerKey, row.id)
                if row.qbId:
                    by_qb_id[row.qbId] = row.id
                stored[row.id] = _stored_row(row)
                if row.generation is not None:
                    generations[row.id] = row.generation
        return KnownRows(by_key=by_key, by_qb_id=by_qb_id, stored=stored), generations


def _stored_row(row: Row[Any]) -> StoredRow:
    # ``row``: the columns of class_lookup.rows_by (a QBClass row and its job's status).
    return StoredRow(
        name=row.name,
        full_name=row.fullName,
        key=row.fullNameKey or row.name,
        is_sub_class=row.isSubClass,
        is_active=row.isActive,
        domain_source=row.domainSource,
        is_sparse=row.isSparse,
        synced=row.status == JobStatus.SYNCED.value and row.qbId is not None,
        edited_in_qbo=row.qboEditedAt is not None,
        sent_key=row.callerKey,
        sent_full_name=row.callerFullName,
        sent_active=row.callerActive,
    )


def _candidate(row: QBClass, has_job: bool) -> AdoptionCandidate:
    fields = ClassInput(
        name=row.name,
        full_name=row.full_name or "",
        is_sub_class=row.is_sub_class,
        is_active=row.is_active,
        domain_source=row.domain_source or "",
        version_token=row.version_token,
        is_sparse=row.is_sparse,
    )
    return AdoptionCandidate(
        class_id=str(row.id),
        key=row.full_name_key,
        qb_id=row.qb_id,
        has_job=has_job,
        fields=fields,
    )


def _insert_values(
    row_id: str, row: ValidClass | Placeholder, realm_id: str, now: datetime
) -> dict[str, object]:
    # Keys are column names (Core insert): the quoted camelCase names of the Node table. A new
    # row has no QBO Id yet (NULL, never "": the column is unique) and SyncToken 0.
    return {
        "id": row_id,
        "realmId": realm_id,
        "qbId": None,
        "name": row.name,
        "fullName": row.full_name,
        "fullNameKey": row.key,
        "isSubClass": row.is_sub_class,
        "isActive": row.is_active,
        "domainSource": row.domain_source,
        "versionToken": 0,
        "isSparse": row.is_sparse,
        "createdAt": now,
        "updatedAt": now,
        # What the caller sent (a placeholder: the path its child named).
        "callerKey": row.key,
        "callerFullName": row.full_name,
        "callerActive": row.is_active,
    }


# The one-statement path (store/one_class.py) writes a new row exactly as the general path does.
insert_values = _insert_values


def _update_values(
    row_id: str, row: ValidClass, sent: ValidClass, now: datetime
) -> dict[str, object]:
    # Parameters of UPDATE_CLASS: the row's new values, and what the caller sent.
    return {
        "b_caller_key": sent.key,
        "b_caller_full_name": sent.full_name,
        "b_caller_active": sent.is_active,
        "b_id": row_id,
        "b_now": now,
        "b_name": row.name,
        "b_full_name": row.full_name,
        "b_key": row.key,
        "b_is_sub_class": row.is_sub_class,
        "b_is_active": row.is_active,
        "b_domain_source": row.domain_source,
        "b_is_sparse": row.is_sparse,
    }
