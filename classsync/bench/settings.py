"""The knobs of one bench run: full (`make bench`, < 5 min) and smoke (CI, < 60 s)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchSettings:
    """Sizes, QBO latency and limits for every scenario."""

    # a. ingest, QBO sync paused
    ingest_streams: int = 1000
    ingest_classes_per_stream: int = 100
    ingest_concurrency: int = 8
    big_stream_classes: int = 100_000
    # b. sync at the ceiling: a scaled ceiling (runs in seconds) and QBO's real 500/min
    sync_ceiling_per_minute: int = 6000
    sync_latency_ms: float = 100.0
    sync_classes: int = 1500
    real_ceiling_per_minute: int = 500
    real_classes: int = 150
    max_in_flight: int = 10
    sync_workers: int = 16
    batch_classes: int = 2000
    # QBO's real limits with batches (500/min, 40 batch/min): long enough for a steady minute
    real_batch_classes: int = 3000
    # which sync runs to make (empty: all of them); `classsync bench --sync-run NAME`
    sync_runs: tuple[str, ...] = ()
    # c. overhead: sequential one-Class streams
    overhead_calls: int = 200
    overhead_latency_ms: float = 50.0
    # d. memory: one stream, answered once at the end (default) and per request, each on a
    # fresh server process
    memory_stream_classes: int = 100_000
    # e. many realms: N companies with a backlog each, at QBO's real per-realm limits, while
    # one-Class calls go to one more, idle, company
    realms: int = 100
    realm_classes: int = 30
    realms_latency_ms: float = 200.0
    realm_probe_calls: int = 50

    @property
    def scaled_window_seconds(self) -> float:
        """The sandbox's rate window for the scaled run: short, so a seconds-long run can trip it."""
        return 6.0


def smoke_settings() -> BenchSettings:
    """A tiny version of every scenario, for CI (`classsync bench --smoke`)."""
    return BenchSettings(
        ingest_streams=20,
        ingest_classes_per_stream=50,
        ingest_concurrency=4,
        big_stream_classes=2000,
        sync_classes=200,
        real_classes=20,
        batch_classes=300,
        real_batch_classes=100,
        overhead_calls=10,
        memory_stream_classes=3000,
        realms=5,
        realm_classes=10,
        realm_probe_calls=5,
    )
