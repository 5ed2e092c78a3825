"""Ports wrapped to report to SyncMetrics: QBO requests as they end, outcomes once committed.

The QBO requests of the engine (``QboGateway``) and of reading changes back (``QboChangeFeed``:
CDC poller, webhook worker) are all counted in the same request metric.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Self, TypeVar

from classsync.domain import (
    ChangePage,
    ClassWrite,
    QboClass,
    QboDisconnected,
    QboError,
    QboOutcomeUnknown,
    QboRejected,
    QboThrottled,
)
from classsync.sync.metered_stores import MeteredClassStore, MeteredJobStore
from classsync.sync.ports import (
    ClassStore,
    JobStore,
    QboGateway,
    SyncMetrics,
    UnitOfWork,
)
from classsync.sync.remote_ports import QboChangeFeed

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


def _timed(metrics: SyncMetrics, realm_id: str, operation: str, call: Callable[[], _T]) -> _T:
    """Run one QBO request; report its duration and outcome under ``operation`` as it ends."""
    started = time.perf_counter()
    error: BaseException | None = None
    try:
        return call()
    except BaseException as caught:
        error = caught
        raise
    finally:
        elapsed = time.perf_counter() - started
        metrics.qbo_request(realm_id, operation, request_outcome(error), elapsed)
        if isinstance(error, QboThrottled):
            metrics.throttled(realm_id)


class MeteredGateway:
    """A QboGateway that times every request and reports its outcome."""

    def __init__(self, inner: QboGateway, metrics: SyncMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def _timed(self, realm_id: str, operation: str, call: Callable[[], _T]) -> _T:
        return _timed(self._metrics, realm_id, operation, call)

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


class MeteredChangeFeed:
    """A QboChangeFeed (the CDC poller's and webhook worker's QBO calls) timed like the gateway.

    The operation label names the QBO request: ``cdc``, ``query`` (a page of every Class, the
    same endpoint ``find_by_name`` uses) and ``read``.
    """

    def __init__(self, inner: QboChangeFeed, metrics: SyncMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def list_changed(self, realm_id: str, changed_since: datetime) -> ChangePage:
        """See QboChangeFeed."""
        return _timed(
            self._metrics,
            realm_id,
            "cdc",
            lambda: self._inner.list_changed(realm_id, changed_since),
        )

    def query_page(self, realm_id: str, start_position: int, max_results: int) -> ChangePage:
        """See QboChangeFeed."""
        return _timed(
            self._metrics,
            realm_id,
            "query",
            lambda: self._inner.query_page(realm_id, start_position, max_results),
        )

    def read(self, realm_id: str, qbo_id: str) -> QboClass:
        """See QboChangeFeed."""
        return _timed(self._metrics, realm_id, "read", lambda: self._inner.read(realm_id, qbo_id))


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
        return MeteredClassStore(self._inner.classes, self._pending, self._metrics)

    @property
    def jobs(self) -> JobStore:
        """See UnitOfWork."""
        return MeteredJobStore(self._inner.jobs, self._pending, self._metrics)

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
