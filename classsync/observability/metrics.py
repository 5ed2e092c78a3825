"""Prometheus metrics: counters the sync layer and gRPC calls feed, gauges read at scrape time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from classsync.sync.ports import JobStatus

log = structlog.get_logger(__name__)

# QBO answers in tens of milliseconds to seconds; a timeout is QBO_TIMEOUT_SECONDS (30 s).
_QBO_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# A CreateClass call waits for QBO up to RESPONSE_WAIT_SECONDS (30 s) by default.
_GRPC_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_STATUSES = tuple(status.value for status in JobStatus)


class QueueStatistics(Protocol):
    """What the scrape-time gauges read (classsync.store.monitoring.StoreMonitor implements it)."""

    def job_counts(self) -> Mapping[tuple[str, str], int]:
        """Number of jobs per (realm, status)."""
        ...

    def oldest_pending(self) -> Mapping[str, datetime]:
        """Per realm, when the oldest job not yet synced last changed (naive UTC)."""
        ...

    def realm_connected(self) -> tuple[bool, str | None]:
        """(whether the configured realm can get tokens, the reason when it cannot)."""
        ...


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class QueueCollector(Collector):
    """``classsync_jobs``, ``classsync_oldest_pending_age_seconds``, ``classsync_realm_connected``.

    Computed from the database when scraped, at most once per ``cache_seconds``, so several
    scrapers (or a fast one) cost a few cheap queries a second at most.
    """

    def __init__(
        self,
        statistics: QueueStatistics,
        realm_id: str,
        *,
        cache_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        utcnow: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._statistics = statistics
        self._realm_id = realm_id
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._utcnow = utcnow
        self._lock = threading.Lock()
        self._cached: list[Metric] = []
        self._cached_at: float | None = None

    def collect(self) -> Iterable[Metric]:
        """The gauges, from the cache when it is fresh enough."""
        with self._lock:
            now = self._clock()
            if self._cached_at is None or now - self._cached_at >= self._cache_seconds:
                self._cached = self._read()
                self._cached_at = now
            return list(self._cached)

    def describe(self) -> Iterable[Metric]:
        """Nothing: registering must not query the database."""
        return []

    def _read(self) -> list[Metric]:
        try:
            counts = self._statistics.job_counts()
            oldest = self._statistics.oldest_pending()
            connected, _ = self._statistics.realm_connected()
        except Exception as error:
            # Database unreachable: leave the gauges out (absent, not stale); /readyz says why.
            log.warning("metrics_queue_read_failed", error=type(error).__name__)
            return []
        realms = sorted({realm for realm, _ in counts} | set(oldest) | {self._realm_id})
        jobs = GaugeMetricFamily(
            "classsync_jobs", "Sync jobs by realm and status.", labels=["realm", "status"]
        )
        age = GaugeMetricFamily(
            "classsync_oldest_pending_age_seconds",
            "Age of the oldest job not yet synced (PENDING or IN_PROGRESS); 0 when none.",
            labels=["realm"],
        )
        now = self._utcnow()
        for realm in realms:
            for status in _STATUSES:
                jobs.add_metric([realm, status], counts.get((realm, status), 0))
            since = oldest.get(realm)
            age.add_metric([realm], max(0.0, (now - since).total_seconds()) if since else 0.0)
        realm_connected = GaugeMetricFamily(
            "classsync_realm_connected",
            "1 while the realm's refresh token works, 0 once QBO refused it (reconnect).",
            labels=["realm"],
        )
        realm_connected.add_metric([self._realm_id], 1.0 if connected else 0.0)
        return [jobs, age, realm_connected]


class Metrics:
    """Every classsync metric in a registry of its own (several apps can live in one process).

    Implements the sync layer's ``SyncMetrics`` and the gRPC interceptor's ``CallRecorder``.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._received = Counter(
            "classsync_classes_received",
            "Valid Classes received from callers and stored.",
            registry=registry,
        )
        self._synced = Counter(
            "classsync_classes_synced",
            "Classes written to QBO and recorded.",
            ["realm"],
            registry=registry,
        )
        self._failed = Counter(
            "classsync_classes_failed",
            "Class syncs that ended FAILED, by error code.",
            ["realm", "code"],
            registry=registry,
        )
        self._requests = Counter(
            "classsync_qbo_requests",
            "QBO API requests by operation and outcome.",
            ["realm", "operation", "outcome"],
            registry=registry,
        )
        self._request_seconds = Histogram(
            "classsync_qbo_request_seconds",
            "Duration of QBO API requests.",
            ["operation"],
            buckets=_QBO_BUCKETS,
            registry=registry,
        )
        self._throttled = Counter(
            "classsync_qbo_throttled",
            "Throttle answers (HTTP 429) from QBO.",
            ["realm"],
            registry=registry,
        )
        self._conflicts = Counter(
            "classsync_conflicts",
            "Fields a caller and QBO both changed (winner qbo), or a caller took back from a "
            "change made in QBO (winner caller).",
            ["realm", "winner", "field"],
            registry=registry,
        )
        self._calls = Counter(
            "classsync_grpc_calls",
            "gRPC calls handled, by method and status code.",
            ["method", "code"],
            registry=registry,
        )
        self._call_seconds = Histogram(
            "classsync_grpc_call_seconds",
            "Duration of gRPC calls (a CreateClass stream: from its start to its last reply).",
            ["method"],
            buckets=_GRPC_BUCKETS,
            registry=registry,
        )

    def watch_queue(self, collector: Collector) -> None:
        """Add the scrape-time gauges."""
        self.registry.register(collector)

    def watch_readiness(self, ready: Callable[[], bool]) -> None:
        """``classsync_ready``: what /readyz answers, as 1/0, read when scraped."""
        gauge = Gauge(
            "classsync_ready",
            "1 while the database answers and is migrated to head (as /readyz), else 0.",
            registry=self.registry,
        )
        gauge.set_function(lambda: 1.0 if ready() else 0.0)

    # --- SyncMetrics ---------------------------------------------------------------------------
    def class_received(self, count: int) -> None:
        """See classsync.sync.ports.SyncMetrics."""
        self._received.inc(count)

    def class_synced(self, realm_id: str) -> None:
        """See classsync.sync.ports.SyncMetrics."""
        self._synced.labels(realm_id).inc()

    def class_failed(self, realm_id: str, code: str) -> None:
        """See classsync.sync.ports.SyncMetrics."""
        self._failed.labels(realm_id, code).inc()

    def qbo_request(self, realm_id: str, operation: str, outcome: str, seconds: float) -> None:
        """See classsync.sync.ports.SyncMetrics."""
        self._requests.labels(realm_id, operation, outcome).inc()
        self._request_seconds.labels(operation).observe(seconds)

    def throttled(self, realm_id: str) -> None:
        """See classsync.sync.ports.SyncMetrics."""
        self._throttled.labels(realm_id).inc()

    # --- ConflictRecorder ----------------------------------------------------------------------
    def conflict_decided(self, realm_id: str, winner: str, field: str) -> None:
        """See classsync.sync.remote_ports.ConflictRecorder."""
        self._conflicts.labels(realm_id, winner, field).inc()

    # --- CallRecorder --------------------------------------------------------------------------
    def grpc_call(self, method: str, code: str, seconds: float) -> None:
        """See classsync.api.call_metrics.CallRecorder."""
        self._calls.labels(method, code).inc()
        self._call_seconds.labels(method).observe(seconds)
