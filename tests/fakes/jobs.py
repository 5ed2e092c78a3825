"""In-memory job queue (ports.JobStore) with the SQL queue's lease, generation and attempt rules."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from classsync.domain import QboClass, join_path, split_full_name
from classsync.sync.ports import (
    ClaimedJob,
    ClassSnapshot,
    JobState,
    JobStatus,
    LinkedClass,
    StoreConflict,
)

if TYPE_CHECKING:
    from tests.fakes.store import FakeDatabase, FakeJobRow, Tables


class FakeJobStore:
    """ports.JobStore over the transaction's tables, with the SQL queue's semantics."""

    def __init__(self, tables: Tables, database: FakeDatabase | None = None) -> None:
        self._tables = tables
        self._database = database

    def claim(
        self,
        *,
        owner: str,
        limit: int,
        lease: timedelta,
        now: datetime,
        realm_id: str | None = None,
    ) -> list[ClaimedJob]:
        """Lease up to ``limit`` due jobs: expired leases first, then pending, shallowest first."""
        jobs = [j for j in self._tables.jobs.values() if realm_id in (None, j.realm_id)]
        expired = sorted(
            (j for j in jobs if j.status == JobStatus.IN_PROGRESS.value and _before(j, now)),
            key=lambda j: j.depth,
        )
        due_by = now + timedelta(milliseconds=1)
        pending = sorted(
            (j for j in jobs if j.status == JobStatus.PENDING.value and _due(j, due_by)),
            key=lambda j: (j.depth, j.next_attempt_at or now),
        )
        due = (expired + pending)[:limit]
        if realm_id is not None:  # one depth level, as the store's one_level
            due = [j for j in due if j.depth == min(d.depth for d in due)]
        claimed = []
        for job in due:
            # A job reclaimed from a dead worker may have reached QBO: its outcome is unknown.
            job.outcome_unknown = job.outcome_unknown or job.status == JobStatus.IN_PROGRESS.value
            job.status = JobStatus.IN_PROGRESS.value
            job.lease_owner, job.lease_expires_at, job.updated_at = owner, now + lease, now
            snapshot = self._snapshot(job.class_id)
            parent = None
            if snapshot.parent_key is not None:
                parent = self.parent_state(job.realm_id, snapshot.parent_key)
            claimed.append(
                ClaimedJob(
                    class_id=job.class_id,
                    realm_id=job.realm_id,
                    generation=job.generation,
                    attempts=job.attempts,
                    depth=job.depth,
                    outcome_unknown=job.outcome_unknown,
                    snapshot=snapshot,
                    parent=parent,
                )
            )
        return claimed

    def due_realms(self, now: datetime) -> list[str]:
        """The realms that have a job due at ``now``."""
        due_by = now + timedelta(milliseconds=1)
        return sorted(
            {
                j.realm_id
                for j in self._tables.jobs.values()
                if (j.status == JobStatus.PENDING.value and _due(j, due_by))
                or (j.status == JobStatus.IN_PROGRESS.value and _before(j, now))
            }
        )

    def _snapshot(self, class_id: str) -> ClassSnapshot:
        row = self._tables.classes[class_id]
        return ClassSnapshot(
            class_id=row.id,
            qb_id=row.qb_id,
            name=row.name,
            key=row.key,
            is_active=row.is_active,
            is_sparse=row.is_sparse,
            version_token=row.version_token,
            full_name=join_path(split_full_name(row.full_name or row.name)),  # QBO form
        )

    def _owned(self, class_id: str, owner: str) -> FakeJobRow | None:
        job = self._tables.jobs.get(class_id)
        if job is None or job.lease_owner != owner or job.status != JobStatus.IN_PROGRESS.value:
            return None
        return job

    def extend_leases(self, owner: str, class_ids: Sequence[str], *, until: datetime) -> int:
        """Push out the leases ``owner`` still holds; how many it still held."""
        held = [j for c in class_ids if (j := self._owned(c, owner)) is not None]
        for job in held:
            job.lease_expires_at = until
        return len(held)

    def parent_state(self, realm_id: str, parent_key: str) -> tuple[str | None, str | None]:
        """(QBO Id, job status) of the realm's Class at ``parent_key``; (None, None) if unknown."""
        row = next(
            (
                r
                for r in self._tables.classes.values()
                if r.key == parent_key and r.realm_id == realm_id
            ),
            None,
        )
        if row is None:
            return None, None
        job = self._tables.jobs.get(row.id)
        return row.qb_id, job.status if job else None

    def record_synced(
        self, claimed: ClaimedJob, owner: str, qbo: QboClass, now: datetime
    ) -> JobState | None:
        """Link the row to QBO (always) and finish the job unless the lease or version moved on."""
        self.record_link(claimed, qbo, now)
        job = self._owned(claimed.class_id, owner)
        if job is None:
            return None
        _release(job, now)
        if job.generation == claimed.generation:
            job.status, job.synced_at = JobStatus.SYNCED.value, now
        else:  # the caller sent a newer version while we synced this one: queue it again
            job.status, job.attempts, job.next_attempt_at = JobStatus.PENDING.value, 0, now
        return JobState(
            class_id=claimed.class_id,
            status=job.status,
            generation=claimed.generation,
            qb_id=qbo.id,
            version_token=_token(qbo.sync_token),
            error_code=None,
            error_message=None,
        )

    def record_synced_many(
        self, synced: Sequence[tuple[ClaimedJob, QboClass]], owner: str, now: datetime
    ) -> dict[str, JobState | None]:
        """``record_synced`` for each job, in this one transaction; rows named in
        ``FakeDatabase.locked_by_others`` are left out, as the store skips rows an ingest
        holds."""
        locked = self._database.locked_by_others if self._database is not None else set()
        return {
            job.class_id: self.record_synced(job, owner, qbo, now)
            for job, qbo in synced
            if job.class_id not in locked
        }

    def record_link(self, claimed: ClaimedJob, qbo: QboClass, now: datetime) -> None:
        """Store QBO's Id and SyncToken on the row; the qbId unique index refuses a taken Id."""
        row = self._tables.classes.get(claimed.class_id)
        if row is None:
            return
        if self.qb_id_holder(qbo.id, other_than=row.id) is not None:
            raise StoreConflict(f'duplicate key value violates "QBClass_qbId_key" ({qbo.id})')
        row.qb_id, row.version_token, row.updated_at = qbo.id, _token(qbo.sync_token), now

    def qb_id_holder(self, qb_id: str, *, other_than: str) -> LinkedClass | None:
        """The row of ``other_than``'s realm, other than it, linked to QBO Id ``qb_id``, if any."""
        realm_id = self._tables.classes[other_than].realm_id
        for row in self._tables.classes.values():
            if row.qb_id == qb_id and row.id != other_than and row.realm_id == realm_id:
                return LinkedClass(class_id=row.id, full_name=row.full_name or row.name)
        return None

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
        """Hand the job back, due at ``at`` (at once if a newer version arrived meanwhile)."""
        job = self._owned(claimed.class_id, owner)
        if job is None:
            return
        job.status, job.lease_owner, job.lease_expires_at = JobStatus.PENDING.value, None, None
        job.next_attempt_at = now if job.generation != claimed.generation else at
        job.attempts += int(count_attempt)
        job.outcome_unknown = job.outcome_unknown or outcome_unknown
        job.last_error_code, job.last_error_message = error_code, error_message[:2000]
        job.updated_at = now

    def record_failed(
        self, claimed: ClaimedJob, owner: str, *, error_code: str, error_message: str, now: datetime
    ) -> None:
        """FAILED with the reason (or, for a newer version, back in the queue)."""
        job = self._owned(claimed.class_id, owner)
        if job is None:
            return
        job.lease_owner = job.lease_expires_at = None
        job.last_error_code, job.last_error_message = error_code, error_message[:2000]
        job.updated_at = now
        if job.generation == claimed.generation:
            job.status, job.attempts = JobStatus.FAILED.value, job.attempts + 1
        else:
            job.status, job.attempts, job.next_attempt_at = JobStatus.PENDING.value, 0, now

    def release_jobs(self, owner: str, class_ids: Sequence[str], now: datetime) -> int:
        """Hand back some of ``owner``'s leased jobs untouched, due now."""
        held = [j for c in class_ids if (j := self._owned(c, owner)) is not None]
        for job in held:
            job.status, job.lease_owner, job.lease_expires_at = JobStatus.PENDING.value, None, None
            job.next_attempt_at = job.updated_at = now
        return len(held)

    def release(self, owner: str, now: datetime) -> int:
        """Hand back every lease ``owner`` holds."""
        held = [j for j in self._tables.jobs.values() if self._owned(j.class_id, owner)]
        for job in held:
            job.status, job.lease_owner, job.lease_expires_at = JobStatus.PENDING.value, None, None
            job.updated_at = now
        return len(held)

    def states(self, class_ids: Sequence[str]) -> dict[str, JobState]:
        """Current job state and QBO link of each Class."""
        out = {}
        for class_id in class_ids:
            job, row = self._tables.jobs.get(class_id), self._tables.classes.get(class_id)
            if job is None or row is None:
                continue
            out[class_id] = JobState(
                class_id=class_id,
                status=job.status,
                generation=job.generation,
                qb_id=row.qb_id,
                version_token=row.version_token,
                error_code=job.last_error_code,
                error_message=job.last_error_message,
            )
        return out

    def counts(self) -> dict[str, int]:
        """Number of jobs per status."""
        counts: dict[str, int] = {}
        for job in self._tables.jobs.values():
            counts[job.status] = counts.get(job.status, 0) + 1
        return counts

    def failed_counts(self) -> dict[str, int]:
        """Number of FAILED jobs per error code."""
        counts: dict[str, int] = {}
        for job in self._tables.jobs.values():
            if job.status == JobStatus.FAILED.value:
                code = job.last_error_code or ""
                counts[code] = counts.get(code, 0) + 1
        return counts

    def oldest_pending(self) -> datetime | None:
        """When the oldest job not yet synced last changed."""
        waiting = (JobStatus.PENDING.value, JobStatus.IN_PROGRESS.value)
        stamps = [j.updated_at for j in self._tables.jobs.values() if j.status in waiting]
        return min((s for s in stamps if s is not None), default=None)

    def requeue(self, *, failed_only: bool, class_ids: Sequence[str], now: datetime) -> int:
        """Put jobs back in the queue with fresh attempts."""
        picked = [
            j
            for j in self._tables.jobs.values()
            if (not class_ids or j.class_id in class_ids)
            and (
                j.status == JobStatus.FAILED.value
                if failed_only or not class_ids
                else j.status != JobStatus.IN_PROGRESS.value
            )
        ]
        for job in picked:
            job.status, job.attempts, job.next_attempt_at = JobStatus.PENDING.value, 0, now
            job.updated_at, job.generation = now, job.generation + 1
        return len(picked)


def _before(job: FakeJobRow, now: datetime) -> bool:
    return job.lease_expires_at is not None and job.lease_expires_at < now


def _due(job: FakeJobRow, due_by: datetime) -> bool:
    return job.next_attempt_at is None or job.next_attempt_at <= due_by


def _release(job: FakeJobRow, now: datetime) -> None:
    job.outcome_unknown = False
    job.lease_owner = job.lease_expires_at = None
    job.last_error_code = job.last_error_message = None
    job.updated_at = now


def _token(sync_token: str) -> int:
    try:
        return int(sync_token)
    except ValueError:
        return 0
