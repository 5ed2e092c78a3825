"""Metrics wrappers, the scrape-time collector and the health verdicts, with in-memory fakes."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import pytest

from classsync.domain import (
    ClassInput,
    ClassWrite,
    QboClass,
    QboError,
    QboRejected,
    QboThrottled,
    validate,
)
from classsync.observability.health import HealthMonitor, HealthReport
from classsync.observability.metrics import Metrics, QueueCollector
from classsync.sync.engine import SyncEngine
from classsync.sync.limiter import RateLimiter
from classsync.sync.metered import (
    MeteredGateway,
    MeteredUnitOfWork,
    metered_uow_factory,
    request_outcome,
)
from classsync.sync.ports import ClaimedJob, ClassSnapshot
from classsync.sync.retry_policy import RetryPolicy
from classsync.sync.settled import SettledBoard
from tests.fakes import FakeClock, FakeDatabase, FakeQboGateway

pytestmark = pytest.mark.unit

REALM = "realm-1"


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


class _Jobs:
    def record_synced(self, claimed: ClaimedJob, owner: str, qbo: QboClass, now: datetime) -> Any:
        return None if owner == "lost-lease" else object()

    def record_failed(self, claimed: ClaimedJob, owner: str, **_: Any) -> None:
        return None


class _Work:
    """A unit of work holding nothing: what matters is whether it was committed."""

    classes: Any = None
    jobs: Any = _Jobs()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, a: type[BaseException] | None, b: BaseException | None, c: TracebackType | None
    ) -> None:
        return None

    def commit(self) -> None:
        return None

    def rollback(self) -> None:
        return None


def _job() -> ClaimedJob:
    snapshot = ClassSnapshot("c1", None, "A", "A", True, False, 0)
    return ClaimedJob("c1", REALM, 1, 0, 1, False, snapshot)


def test_outcomes_are_reported_only_once_committed() -> None:
    metrics = Metrics()
    qbo = QboClass("1", "0", "A", "A", True)
    with MeteredUnitOfWork(_Work(), metrics) as uow:
        uow.jobs.record_synced(_job(), "w", qbo, datetime(2026, 1, 1))
        uow.jobs.record_failed(
            _job(), "w", error_code="QBO_2170", error_message="x", now=datetime(2026, 1, 1)
        )
        uow.rollback()  # nothing happened
        uow.jobs.record_synced(_job(), "w", qbo, datetime(2026, 1, 1))
        uow.jobs.record_synced(_job(), "lost-lease", qbo, datetime(2026, 1, 1))
        uow.jobs.record_failed(
            _job(), "w", error_code="QBO_6000", error_message="x", now=datetime(2026, 1, 1)
        )
        assert _value(metrics, "classsync_classes_synced_total", realm=REALM) == 0
        uow.commit()
    assert _value(metrics, "classsync_classes_synced_total", realm=REALM) == 1
    assert _value(metrics, "classsync_classes_failed_total", realm=REALM, code="QBO_2170") == 0
    assert _value(metrics, "classsync_classes_failed_total", realm=REALM, code="QBO_6000") == 1


class _Qbo:
    def __init__(self, error: QboError | None = None) -> None:
        self.error = error

    def create(self, realm_id: str, write: ClassWrite) -> QboClass:
        if self.error is not None:
            raise self.error
        return QboClass("1", "0", write.name, write.name, True)

    def update(self, realm_id: str, write: ClassWrite) -> QboClass:
        return self.create(realm_id, write)

    def read(self, realm_id: str, qbo_id: str) -> QboClass:
        return QboClass(qbo_id, "0", "A", "A", True)

    def find_by_name(self, realm_id: str, fully_qualified_name: str) -> QboClass | None:
        return None

    def batch_write(self, realm_id: str, writes: Sequence[ClassWrite]) -> list[QboClass | QboError]:
        return [QboThrottled("slow down") for _ in writes]


def test_gateway_requests_are_counted_by_operation_and_outcome() -> None:
    metrics = Metrics()
    MeteredGateway(_Qbo(), metrics).create(REALM, ClassWrite("A", True))
    with pytest.raises(QboThrottled):
        MeteredGateway(_Qbo(QboThrottled("429")), metrics).create(REALM, ClassWrite("B", True))
    MeteredGateway(_Qbo(), metrics).batch_write(REALM, [ClassWrite("C", True)] * 2)
    requests = "classsync_qbo_requests_total"
    assert _value(metrics, requests, realm=REALM, operation="create", outcome="ok") == 1
    assert _value(metrics, requests, realm=REALM, operation="create", outcome="throttled") == 1
    assert _value(metrics, requests, realm=REALM, operation="batch", outcome="ok") == 1
    assert _value(metrics, "classsync_qbo_throttled_total", realm=REALM) == 3
    assert _value(metrics, "classsync_qbo_request_seconds_count", operation="create") == 2


def test_request_outcomes_are_a_small_fixed_set() -> None:
    assert request_outcome(None) == "ok"
    assert request_outcome(QboRejected("no", code="2170")) == "rejected"
    assert request_outcome(QboError("?")) == "retryable"
    assert request_outcome(RuntimeError("bug")) == "internal_error"


class _Statistics:
    def __init__(self) -> None:
        self.reads = 0
        self.down = False
        self.connected = True

    def job_counts(self) -> Mapping[tuple[str, str], int]:
        self.reads += 1
        if self.down:
            raise ConnectionError("database down")
        return {(REALM, "PENDING"): 3, (REALM, "SYNCED"): 7}

    def oldest_pending(self) -> Mapping[str, datetime]:
        return {REALM: datetime(2026, 1, 1, 12, 0, 0)}

    def realm_connected(self) -> tuple[bool, str | None]:
        return self.connected, None


def test_queue_gauges_are_read_at_scrape_time_and_cached() -> None:
    statistics = _Statistics()
    ticks = {"now": 0.0}
    metrics = Metrics()
    metrics.watch_queue(
        QueueCollector(
            statistics,
            REALM,
            cache_seconds=2.0,
            clock=lambda: ticks["now"],
            utcnow=lambda: datetime(2026, 1, 1, 12, 0, 30),
        )
    )
    assert statistics.reads == 0  # registering reads nothing
    assert _value(metrics, "classsync_jobs", realm=REALM, status="PENDING") == 3
    assert _value(metrics, "classsync_jobs", realm=REALM, status="FAILED") == 0
    assert _value(metrics, "classsync_oldest_pending_age_seconds", realm=REALM) == 30
    assert _value(metrics, "classsync_realm_connected", realm=REALM) == 1
    reads = statistics.reads
    _value(metrics, "classsync_jobs", realm=REALM, status="SYNCED")
    assert statistics.reads == reads  # within the cache time
    statistics.connected = False
    ticks["now"] = 2.5
    assert _value(metrics, "classsync_realm_connected", realm=REALM) == 0
    statistics.down = True
    ticks["now"] = 5.0
    assert (
        metrics.registry.get_sample_value("classsync_jobs", {"realm": REALM, "status": "SYNCED"})
        is None
    )


class _Probes:
    schema_head = "0003"

    def __init__(self) -> None:
        self.database_up = True
        self.connected = True

    def ping(self) -> None:
        if not self.database_up:
            raise ConnectionRefusedError("connection refused\nsecond line")

    def schema_revision(self) -> str | None:
        return "0003"

    def realm_connected(self) -> tuple[bool, str | None]:
        return self.connected, None if self.connected else "invalid_grant"


def test_health_follows_the_database_and_the_realm() -> None:
    probes = _Probes()
    heard: list[HealthReport] = []
    monitor = HealthMonitor(probes, REALM, interval=60, on_change=heard.append)
    assert monitor.check_now().ready
    probes.database_up = False
    down = monitor.check_now()
    assert not down.ready
    assert down.reasons() == ["database unreachable: ConnectionRefusedError: connection refused"]
    assert down.realm_connected is True  # an outage says nothing about QBO: kept
    probes.database_up = True
    probes.connected = False
    assert monitor.check_now().realm_connected is False
    monitor.check_now()  # nothing changed: nobody is told
    assert [(r.database_reachable, r.realm_connected) for r in heard] == [
        (True, True),
        (False, True),
        (True, False),
    ]


def test_a_database_not_migrated_is_reachable_but_not_ready() -> None:
    class NotMigrated(_Probes):
        def schema_revision(self) -> str | None:
            return None

        def realm_connected(self) -> tuple[bool, str | None]:
            raise LookupError("no such table: ClasssyncRealm")

    report = HealthMonitor(NotMigrated(), REALM, interval=60, on_change=lambda _: None).check_now()
    assert report.database_reachable
    assert not report.ready
    assert report.realm_connected is None
    assert report.reasons() == [
        "database schema at nothing, expected 0003: run `classsync migrate`"
    ]


def test_age_is_zero_without_a_backlog() -> None:
    class Empty(_Statistics):
        def oldest_pending(self) -> Mapping[str, datetime]:
            return {}

    metrics = Metrics()
    metrics.watch_queue(QueueCollector(Empty(), REALM, utcnow=lambda: datetime(2026, 1, 1)))
    assert _value(metrics, "classsync_oldest_pending_age_seconds", realm=REALM) == 0


def test_a_database_that_never_answers_counts_as_unreachable() -> None:
    class Hanging(_Probes):
        def __init__(self) -> None:
            super().__init__()
            self.release = threading.Event()
            self.calls = 0

        def ping(self) -> None:
            self.calls += 1
            if self.calls > 1:
                self.release.wait(10)  # a connect to a host that drops packets

    probes = Hanging()
    monitor = HealthMonitor(probes, REALM, interval=60, on_change=lambda _: None, timeout=0.2)
    assert monitor.check_now().database_reachable
    stuck = monitor.check_now()
    assert not stuck.database_reachable
    assert stuck.reasons() == ["database unreachable: no answer within 0.2 s"]
    monitor.check_now()
    assert probes.calls == 2  # no second check piles up behind the hung one
    probes.release.set()
    assert monitor.check_now().database_reachable


def test_an_engine_over_metered_ports_counts_what_it_committed() -> None:
    clock = FakeClock()
    db = FakeDatabase()
    qbo = FakeQboGateway()
    metrics = Metrics()
    uow = metered_uow_factory(db.uow, metrics)
    limiter = RateLimiter(per_minute=6000, clock=clock.monotonic, sleep=clock.sleep)
    engine = SyncEngine(
        uow,
        MeteredGateway(qbo, metrics),
        limiter,
        RetryPolicy(store_write_pauses=(0.0, 0.0)),
        SettledBoard(),
        workers=1,
        clock=clock,
    )
    items = [validate(ClassInput(name=name, full_name=name)) for name in ("Sales", "Ops")]
    with uow() as work:
        work.classes.save_batch(items, REALM, clock.now())  # type: ignore[arg-type]
        work.commit()
    qbo.script(
        "create",
        lambda: db.fail_next_commits(1),  # the first outcome write is lost and written again
        QboRejected("QBO fault 6000: business rule", code="6000"),
    )
    while engine.run_once():
        pass
    assert _value(metrics, "classsync_classes_received_total") == 2
    assert _value(metrics, "classsync_classes_synced_total", realm=REALM) == 1
    assert _value(metrics, "classsync_classes_failed_total", realm=REALM, code="QBO_6000") == 1
    requests = "classsync_qbo_requests_total"
    assert _value(metrics, requests, realm=REALM, operation="create", outcome="ok") == 1
    assert _value(metrics, requests, realm=REALM, operation="create", outcome="rejected") == 1
