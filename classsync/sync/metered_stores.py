"""The stores of a metered unit of work: every port method forwarded by name, outcomes noted.

Each method is written out (no ``__getattr__``): a method added to a port must be added here
too, and ``tests/unit/test_metered.py`` fails until it is, so nothing new goes uncounted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from classsync.domain import QboClass, Rejection, ValidClass
from classsync.sync.ports import (
    AdoptionCandidate,
    ClaimedJob,
    ClassStore,
    JobLease,
    JobState,
    JobStore,
    LinkedClass,
    OneClassStore,
    OneStatementOutcome,
    StoredClass,
    SyncMetrics,
)

# Reports noted inside a transaction, run by the unit of work once it commits.
Pending = list[Callable[[], None]]


class MeteredClassStore:
    """A ClassStore that notes the Classes received, to report after the commit."""

    def __init__(self, inner: ClassStore, pending: Pending, metrics: SyncMetrics) -> None:
        self._inner = inner
        self._pending = pending
        self._metrics = metrics

    def adoption_candidates(
        self, realm_id: str, *, after: str | None, limit: int
    ) -> list[AdoptionCandidate]:
        """See ClassStore."""
        return self._inner.adoption_candidates(realm_id, after=after, limit=limit)

    def assign_key(self, class_id: str, key: str) -> bool:
        """See ClassStore."""
        return self._inner.assign_key(class_id, key)

    def count_unsynced_without_job(self) -> int:
        """See ClassStore."""
        return self._inner.count_unsynced_without_job()

    def save_batch(
        self, items: Sequence[ValidClass], realm_id: str, now: datetime
    ) -> list[StoredClass | Rejection]:
        """See ClassStore; counts the Classes received."""
        results = self._inner.save_batch(items, realm_id, now)
        count = len(items)
        self._pending.append(lambda: self._metrics.class_received(count))
        return results


class MeteredJobStore:
    """A JobStore that notes synced and failed outcomes, to report after the commit."""

    def __init__(self, inner: JobStore, pending: Pending, metrics: SyncMetrics) -> None:
        self._inner = inner
        self._pending = pending
        self._metrics = metrics

    def claim(
        self,
        *,
        owner: str,
        limit: int,
        lease: timedelta,
        now: datetime,
        realm_id: str | None = None,
    ) -> list[ClaimedJob]:
        """See JobStore."""
        return self._inner.claim(owner=owner, limit=limit, lease=lease, now=now, realm_id=realm_id)

    def due_realms(self, now: datetime) -> list[str]:
        """See JobStore."""
        return self._inner.due_realms(now)

    def extend_leases(self, owner: str, class_ids: Sequence[str], *, until: datetime) -> int:
        """See JobStore."""
        return self._inner.extend_leases(owner, class_ids, until=until)

    def parent_state(self, realm_id: str, parent_key: str) -> tuple[str | None, str | None]:
        """See JobStore."""
        return self._inner.parent_state(realm_id, parent_key)

    def record_synced(
        self, claimed: ClaimedJob, owner: str, qbo: QboClass, now: datetime
    ) -> JobState | None:
        """See JobStore; counts the sync."""
        state = self._inner.record_synced(claimed, owner, qbo, now)
        if state is not None:  # None: the lease was lost, another worker owns the outcome
            self._pending.append(lambda: self._metrics.class_synced(claimed.realm_id))
        return state

    def record_synced_many(
        self, synced: Sequence[tuple[ClaimedJob, QboClass]], owner: str, now: datetime
    ) -> dict[str, JobState | None]:
        """See JobStore; counts each job recorded here."""
        states = self._inner.record_synced_many(synced, owner, now)
        for claimed, _qbo in synced:
            # Absent: left for record_synced (counted there); None: the lease was lost.
            if states.get(claimed.class_id) is not None:
                realm_id = claimed.realm_id
                self._pending.append(lambda r=realm_id: self._metrics.class_synced(r))  # type: ignore[misc]
        return states

    def record_link(self, claimed: ClaimedJob, qbo: QboClass, now: datetime) -> None:
        """See JobStore."""
        self._inner.record_link(claimed, qbo, now)

    def qb_id_holder(self, qb_id: str, *, other_than: str) -> LinkedClass | None:
        """See JobStore."""
        return self._inner.qb_id_holder(qb_id, other_than=other_than)

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
        """See JobStore."""
        self._inner.retry_later(
            claimed,
            owner,
            at=at,
            error_code=error_code,
            error_message=error_message,
            count_attempt=count_attempt,
            outcome_unknown=outcome_unknown,
            now=now,
        )

    def record_failed(
        self, claimed: ClaimedJob, owner: str, *, error_code: str, error_message: str, now: datetime
    ) -> None:
        """See JobStore; counts the failure by code."""
        self._inner.record_failed(
            claimed, owner, error_code=error_code, error_message=error_message, now=now
        )
        self._pending.append(lambda: self._metrics.class_failed(claimed.realm_id, error_code))

    def release_jobs(self, owner: str, class_ids: Sequence[str], now: datetime) -> int:
        """See JobStore."""
        return self._inner.release_jobs(owner, class_ids, now)

    def release(self, owner: str, now: datetime) -> int:
        """See JobStore."""
        return self._inner.release(owner, now)

    def states(self, class_ids: Sequence[str]) -> dict[str, JobState]:
        """See JobStore."""
        return self._inner.states(class_ids)

    def counts(self) -> dict[str, int]:
        """See JobStore."""
        return self._inner.counts()

    def failed_counts(self) -> dict[str, int]:
        """See JobStore."""
        return self._inner.failed_counts()

    def oldest_pending(self) -> datetime | None:
        """See JobStore."""
        return self._inner.oldest_pending()

    def requeue(self, *, failed_only: bool, class_ids: Sequence[str], now: datetime) -> int:
        """See JobStore."""
        return self._inner.requeue(failed_only=failed_only, class_ids=class_ids, now=now)


class MeteredOneClassStore:
    """``OneClassStore`` whose stored Class is counted as received (it commits on its own)."""

    def __init__(self, inner: OneClassStore, metrics: SyncMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def store_new(
        self, item: ValidClass, realm_id: str, now: datetime, lease: JobLease | None
    ) -> StoredClass | None:
        """Forward; count the Class once stored."""
        stored = self._inner.store_new(item, realm_id, now, lease)
        if stored is not None:
            self._metrics.class_received(1)
        return stored


class MeteredOneStatementOutcome:
    """``OneStatementOutcome`` whose synced job is counted (it commits on its own)."""

    def __init__(self, inner: OneStatementOutcome, metrics: SyncMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def record_synced(
        self, claimed: ClaimedJob, owner: str, qbo: QboClass, now: datetime
    ) -> JobState | None:
        """Forward; count the job once recorded (None: the lease was lost, not ours to count)."""
        state = self._inner.record_synced(claimed, owner, qbo, now)
        if state is not None:
            self._metrics.class_synced(claimed.realm_id)
        return state
