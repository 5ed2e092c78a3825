"""Ports wrapped to report to SyncMetrics: QBO requests as they end, outcomes once committed."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

from classsync.domain import (
    ClassWrite,
    QboClass,
    QboDisconnected,
    QboError,
    QboOutcomeUnknown,
    QboRejected,
    QboThrottled,
    Rejection,
    ValidClass,
)
from classsync.sync.ports import (
    ClaimedJob,
    ClassStore,
    JobLease,
    JobState,
    JobStore,
    OneClassStore,
    OneStatementOutcome,
    QboGateway,
    StoredClass,
    SyncMetrics,
    UnitOfWork,
)

_T = TypeVar("_T")


def request_outcome(error: BaseException | None) -> str:
    """The ``outcome`` label of a QBO request: ok, or a small fixed set of error kinds."""
    if error is None:
        return "ok"
    kinds: tuple[tuple[type[QboError], str], ...] = (
        (QboThrottled, "throttled"),
        (QboOutcomeUnknown, "outcome_unknown"),
        (QboDisconnected, "disconnected"),
        (QboRejected, "rejected"),
    )
    for kind, label in kinds:
        if isinstance(error, kind):
            return label
    return "retryable" if isinstance(error, QboError) else "internal_error"


class MeteredGateway:
    """A QboGateway that times every request and reports its outcome."""

    def __init__(self, inner: QboGateway, metrics: SyncMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def _timed(self, realm_id: str, operation: str, call: Callable[[], _T]) -> _T:
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            return call()
        except BaseException as caught:
            error = caught
            raise
        finally:
            elapsed = time.perf_counter() - started
            self._metrics.qbo_request(realm_id, operation, request_outcome(error), elapsed)
            if isinstance(error, QboThrottled):
                self._metrics.throttled(realm_id)

    def create(self, realm_id: str, write: ClassWrite) -> QboClass:
        """See QboGateway."""
        return self._timed(realm_id, "create", lambda: self._inner.create(realm_id, write))

    def update(self, realm_id: str, write: ClassWrite) -> QboClass:
        """See QboGateway."""
        return self._timed(realm_id, "update", lambda: self._inner.update(realm_id, write))

    def read(self, realm_id: str, qbo_id: str) -> QboClass:
        """See QboGateway."""
        return self._timed(realm_id, "read", lambda: self._inner.read(realm_id, qbo_id))

    def find_by_name(self, realm_id: str, fully_qualified_name: str) -> QboClass | None:
        """See QboGateway."""
        return self._timed(
            realm_id, "query", lambda: self._inner.find_by_name(realm_id, fully_qualified_name)
        )

    def batch_write(self, realm_id: str, writes: Sequence[ClassWrite]) -> list[QboClass | QboError]:
        """See QboGateway. Items QBO throttled inside a batch count as throttles too."""
        results = self._timed(realm_id, "batch", lambda: self._inner.batch_write(realm_id, writes))
        for result in results:
            if isinstance(result, QboThrottled):
                self._metrics.throttled(realm_id)
        return results


class _MeteredClassStore:
    """Forwards everything; notes Classes received to report after the commit."""

    def __init__(
        self, inner: ClassStore, pending: list[Callable[[], None]], metrics: SyncMetrics
    ) -> None:
        self._inner = inner
        self._pending = pending
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def save_batch(
        self, items: Sequence[ValidClass], realm_id: str, now: datetime
    ) -> list[StoredClass | Rejection]:
        results = self._inner.save_batch(items, realm_id, now)
        count = len(items)
        self._pending.append(lambda: self._metrics.class_received(count))
        return results


class _MeteredJobStore:
    """Forwards everything; notes synced and failed outcomes to report after the commit."""

    def __init__(
        self, inner: JobStore, pending: list[Callable[[], None]], metrics: SyncMetrics
    ) -> None:
        self._inner = inner
        self._pending = pending
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def record_synced(
        self, claimed: ClaimedJob, owner: str, qbo: QboClass, now: datetime
    ) -> JobState | None:
        state = self._inner.record_synced(claimed, owner, qbo, now)
        if state is not None:  # None: the lease was lost, another worker owns the outcome
            self._pending.append(lambda: self._metrics.class_synced(claimed.realm_id))
        return state

    def record_synced_many(
        self, synced: Sequence[tuple[ClaimedJob, QboClass]], owner: str, now: datetime
    ) -> dict[str, JobState | None]:
        states = self._inner.record_synced_many(synced, owner, now)
        for claimed, _qbo in synced:
            # Absent: left for record_synced (counted there); None: the lease was lost.
            if states.get(claimed.class_id) is not None:
                realm_id = claimed.realm_id
                self._pending.append(lambda r=realm_id: self._metrics.class_synced(r))  # type: ignore[misc]
        return states

    def record_failed(
        self, claimed: ClaimedJob, owner: str, *, error_code: str, error_message: str, now: datetime
    ) -> None:
        self._inner.record_failed(
            claimed, owner, error_code=error_code, error_message=error_message, now=now
        )
        self._pending.append(lambda: self._metrics.class_failed(claimed.realm_id, error_code))


class MeteredUnitOfWork:
    """A UnitOfWork whose Classes received and sync outcomes are reported once committed.

    Reporting after the commit keeps the counters true: a transaction rolled back (and retried)
    counts once, when it finally commits.
    """

    def __init__(self, inner: UnitOfWork, metrics: SyncMetrics) -> None:
        self._inner = inner
        self._metrics = metrics
        self._pending: list[Callable[[], None]] = []

    @property
    def classes(self) -> ClassStore:
        """See UnitOfWork."""
        return _MeteredClassStore(self._inner.classes, self._pending, self._metrics)

    @property
    def jobs(self) -> JobStore:
        """See UnitOfWork."""
        return _MeteredJobStore(self._inner.jobs, self._pending, self._metrics)  # type: ignore[return-value]

    def __enter__(self) -> Self:
        self._inner.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._pending.clear()
        self._inner.__exit__(exc_type, exc, tb)

    def commit(self) -> None:
        """Commit, then report what the transaction recorded."""
        self._inner.commit()
        reports, self._pending[:] = list(self._pending), []
        for report in reports:
            report()

    def rollback(self) -> None:
        """Roll back and forget what the transaction would have reported."""
        self._pending.clear()
        self._inner.rollback()


def metered_uow_factory(
    factory: Callable[[], UnitOfWork], metrics: SyncMetrics
) -> Callable[[], UnitOfWork]:
    """``factory`` whose units of work report to ``metrics``."""
    return lambda: MeteredUnitOfWork(factory(), metrics)


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
