"""The sync-job outbox: one job per Class, queued by ingest, leased to one worker at a time."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from classsync.domain import QboClass
from classsync.store import statements as sql
from classsync.store.batch_outcomes import link_values, record_synced_many
from classsync.store.batch_outcomes import sync_token_int as _sync_token_int
from classsync.store.bulk_insert import insert_rows
from classsync.store.claims import claim_due_jobs
from classsync.store.class_lookup import job_states
from classsync.store.models import QBClass, SyncJob
from classsync.store.statements import in_chunks
from classsync.sync.ports import ClaimedJob, JobState, JobStatus, LinkedClass

_PENDING = JobStatus.PENDING.value
_IN_PROGRESS = JobStatus.IN_PROGRESS.value
_MAX_ERROR_MESSAGE = 2000


class JobQueue:
    """The outbox: one job row per Class, leased to one worker at a time."""

    def __init__(self, session: Session) -> None:
        self._session = session

    # --- ingest ----------------------------------------------------------------------------------
    def enqueue(
        self,
        queue: dict[str, int],
        placeholders: dict[str, int],
        *,
        realm_id: str,
        now: datetime,
        fresh: Collection[str] = (),
    ) -> dict[str, int]:
        """(Re)queue jobs and return the generation of each class in ``queue``.

        ``queue`` and ``placeholders`` map class ids to depths: every class in ``queue`` starts
        a new generation; a placeholder only gets a job if it has none. A job being worked on
        keeps its lease: only its generation moves on, and the worker that holds it re-queues it
        when it finishes (so two workers never write one Class at once). ``fresh`` are classes
        inserted in this transaction: they cannot have a job yet, so they are not looked up
        (most of a new stream's Classes).
        """
        ids = list({*queue, *placeholders})
        fresh = set(fresh)
        existing: set[str] = set()
        for chunk in in_chunks([i for i in ids if i not in fresh]):
            existing.update(
                self._session.scalars(select(SyncJob.class_id).where(SyncJob.class_id.in_(chunk)))
            )
        insert_rows(
            self._session,
            sql.JOB,
            [
                _new_job(class_id, queue.get(class_id) or placeholders[class_id], realm_id, now)
                for class_id in ids
                if class_id not in existing
            ],
        )
        again = {class_id: depth for class_id, depth in queue.items() if class_id in existing}
        if again:
            self._session.connection().execute(
                sql.REQUEUE_TOUCHED,
                [{"b_id": i, "b_depth": depth, "b_now": now} for i, depth in again.items()],
            )
        # A job inserted just now is at generation 1; only re-queued ones need reading back.
        generations = {class_id: 1 for class_id in queue if class_id not in existing}
        for chunk in in_chunks(list(again)):
            generations.update(
                (class_id, generation)
                for class_id, generation in self._session.execute(
                    select(SyncJob.class_id, SyncJob.generation).where(SyncJob.class_id.in_(chunk))
                )
            )
        return generations

    # --- workers ---------------------------------------------------------------------------------
    def claim(
        self,
        *,
        owner: str,
        limit: int,
        lease: timedelta,
        now: datetime,
        realm_id: str | None = None,
    ) -> list[ClaimedJob]:
        """Lease up to ``limit`` due jobs, shallowest first (parents before children)."""
        return claim_due_jobs(
            self._session.connection(),
            owner=owner,
            limit=limit,
            until=now + lease,
            now=now,
            realm_id=realm_id,
        )

    def due_realms(self, now: datetime) -> list[str]:
        """The realms that have a job due at ``now`` (each once)."""
        due_by = now + timedelta(milliseconds=1)  # as the claim: stamps may round up
        mysql = self._session.get_bind().dialect.name == "mysql"  # no long recursion there
        query = sql.DUE_REALMS_DISTINCT if mysql else sql.DUE_REALMS
        rows = self._session.execute(query, {"due_by": due_by, "now": now})
        return sorted(realm_id for (realm_id,) in rows)

    def extend_leases(self, owner: str, class_ids: Sequence[str], *, until: datetime) -> int:
        """Push the leases ``owner`` still holds on ``class_ids`` out to ``until``; how many.

        A worker still busy with a job (waiting for a QBO slot, or in a slow call) keeps it, so
        no other worker reclaims it as "outcome unknown" and writes it a second time. Rows are
        locked in id order, and ``updatedAt`` is left alone (it dates the job's last change).
        """
        extended = 0
        for chunk in in_chunks(sorted(class_ids)):
            result = self._session.execute(
                update(SyncJob)
                .where(
                    SyncJob.class_id.in_(chunk),
                    SyncJob.lease_owner == owner,
                    SyncJob.status == _IN_PROGRESS,
                )
                .values(lease_expires_at=until)
            )
            extended += int(result.rowcount or 0)  # type: ignore[attr-defined]
        return extended

    def parent_state(self, realm_id: str, parent_key: str) -> tuple[str | None, str | None]:
        """(QBO Id, job status) of the realm's Class at ``parent_key``; (None, None) if unknown."""
        row = self._session.execute(
            select(QBClass.qb_id, SyncJob.status)
            .outerjoin(SyncJob, SyncJob.class_id == QBClass.id)
            .where(QBClass.realm_id == realm_id, QBClass.full_name_key == parent_key)
        ).first()
        if row is None:
            return None, None
        return row[0], row[1]

    # --- outcomes --------------------------------------------------------------------------------
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
        if job is None or job.lease_owner != owner or job.status != _IN_PROGRESS:
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
        connection = self._session.connection()
        params = {
            **link_values(claimed.class_id, qbo, now),
            "owner": owner,
            "job_generation": claimed.generation,
        }
        connection.execute(sql.LINK, params)
        status = JobStatus.SYNCED.value
        if not connection.execute(sql.FINISH, params).rowcount:
            # The caller sent a newer version while we synced this one: queue it again.
            if not connection.execute(sql.REQUEUE_NEWER, params).rowcount:
                return None
            status = _PENDING
        return JobState(
            class_id=claimed.class_id,
            status=status,
            generation=claimed.generation,
            qb_id=qbo.id,
            version_token=_sync_token_int(qbo.sync_token),
            error_code=None,
            error_message=None,
        )

    def record_synced_many(
        self, synced: Sequence[tuple[ClaimedJob, QboClass]], owner: str, now: datetime
    ) -> dict[str, JobState | None]:
        """``record_synced`` for a batch's jobs in one transaction (see ``batch_outcomes``)."""
        self._relax_commit()
        return record_synced_many(self._session.connection(), synced, owner, now)

    def record_link(self, claimed: ClaimedJob, qbo: QboClass, now: datetime) -> None:
        """Link the row to an existing QBO class (found by name) before updating it."""
        row = self._session.get(QBClass, claimed.class_id)
        if row is not None:
            row.qb_id = qbo.id
            row.version_token = _sync_token_int(qbo.sync_token)
            row.qbo_name = qbo.name
            row.qbo_parent_id = qbo.parent_id or None
            row.qbo_active = qbo.active
            row.updated_at = now

    def qb_id_holder(self, qb_id: str, *, other_than: str) -> LinkedClass | None:
        """The row of ``other_than``'s realm, other than it, linked to QBO Id ``qb_id``, if any
        (a QBO Id is unique only inside one company)."""
        realm_id = select(QBClass.realm_id).where(QBClass.id == other_than).scalar_subquery()
        row = self._session.execute(
            select(QBClass.id, QBClass.name, QBClass.full_name).where(
                QBClass.qb_id == qb_id, QBClass.id != other_than, QBClass.realm_id == realm_id
            )
        ).first()
        if row is None:
            return None
        return LinkedClass(class_id=str(row[0]), full_name=row[2] or row[1])

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
        job.status = _PENDING
        job.lease_owner = None
        job.lease_expires_at = None
        job.next_attempt_at = now if job.generation != claimed.generation else at
        if count_attempt:
            job.attempts += 1
        job.outcome_unknown = job.outcome_unknown or outcome_unknown
        job.last_error_code = error_code
        job.last_error_message = error_message[:_MAX_ERROR_MESSAGE]
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
        job.last_error_message = error_message[:_MAX_ERROR_MESSAGE]
        job.updated_at = now
        if job.generation == claimed.generation:
            job.status = JobStatus.FAILED.value
            job.attempts += 1
        else:  # the caller sent a newer version meanwhile: try that one
            job.status = _PENDING
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
                SyncJob.status == _IN_PROGRESS,
                SyncJob.class_id.in_(list(class_ids)),
            )
            .values(
                status=_PENDING,
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
            .where(SyncJob.lease_owner == owner, SyncJob.status == _IN_PROGRESS)
            .values(status=_PENDING, lease_owner=None, lease_expires_at=None, updated_at=now)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    # --- operators and callers -------------------------------------------------------------------
    def states(self, class_ids: Sequence[str]) -> dict[str, JobState]:
        """Current job state and QBO link of each Class."""
        connection = self._session.connection()
        return {row[0]: JobState(*row) for row in job_states(connection, list(class_ids))}

    def counts(self) -> dict[str, int]:
        """Number of jobs per status."""
        return {
            status: int(count)
            for status, count in self._session.execute(
                select(SyncJob.status, func.count()).group_by(SyncJob.status)
            )
        }

    def failed_counts(self) -> dict[str, int]:
        """Number of FAILED jobs per error code ("" for a job failed with none)."""
        return {
            code or "": int(count)
            for code, count in self._session.execute(
                select(SyncJob.last_error_code, func.count())
                .where(SyncJob.status == JobStatus.FAILED.value)
                .group_by(SyncJob.last_error_code)
            )
        }

    def oldest_pending(self) -> datetime | None:
        """When the oldest Class not yet synced was accepted: the age of the sync backlog.

        Read from the Class row, which ingest stamps each time it accepts the Class; the job's
        own timestamps move on every claim and retry, so a backlog stuck behind a QBO outage
        would look fresh. A FAILED job an operator requeues counts from its acceptance too.
        """
        return self._session.scalar(
            select(func.min(QBClass.updated_at))
            .join(SyncJob, SyncJob.class_id == QBClass.id)
            .where(SyncJob.status.in_([_PENDING, _IN_PROGRESS]))
        )

    def requeue(self, *, failed_only: bool, class_ids: Sequence[str], now: datetime) -> int:
        """Put FAILED (and, unless ``failed_only``, any) jobs back in the queue with fresh attempts."""
        statement = update(SyncJob).values(
            status=_PENDING,
            attempts=0,
            next_attempt_at=now,
            updated_at=now,
            generation=SyncJob.generation + 1,
        )
        if failed_only or not class_ids:
            statement = statement.where(SyncJob.status == JobStatus.FAILED.value)
        else:
            statement = statement.where(SyncJob.status != _IN_PROGRESS)
        if class_ids:
            statement = statement.where(SyncJob.class_id.in_(list(class_ids)))
        return int(self._session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]


def _new_job(class_id: str, depth: int, realm_id: str, now: datetime) -> dict[str, object]:
    # Keys are column names (Core insert).
    return {
        "classId": class_id,
        "realmId": realm_id,
        "status": _PENDING,
        "generation": 1,
        "depth": depth,
        "attempts": 0,
        "nextAttemptAt": now,
        "outcomeUnknown": False,
        "createdAt": now,
        "updatedAt": now,
    }
