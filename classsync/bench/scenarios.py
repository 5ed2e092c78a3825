"""The four scenarios of issue #5: ingest, sync at the ceiling, per-call overhead, memory."""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Any

from classsync.bench.harness import Stack, stack, wait_until
from classsync.bench.processes import Sampler
from classsync.bench.settings import BenchSettings
from classsync.bench.workload import (
    MAX_PER_REQUEST,
    LoadClient,
    completions,
    make_classes,
    make_stream,
)

PAUSED = {"SYNC_ENABLED": "false"}
# Overhead and ingest must not be paced by QBO limits: the sandbox's are off, ours far away.
_NO_LIMITS = {"limits_enabled": False}
_FAR_CEILING = {"QBO_REQUESTS_PER_MINUTE": "1000000", "QBO_MAX_IN_FLIGHT": "100"}


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def _ingest_run(
    st: Stack, streams: list[list[Any]], concurrency: int, label: str, *, per_request: bool = False
) -> dict[str, Any]:
    client = LoadClient(st.server.address)
    try:
        cpu0, pg0 = st.server.cpu_seconds(), st.postgres_cpu_seconds()
        result = client.run(
            streams, concurrency=concurrency, wait_seconds=0, per_request=per_request
        )
        server_cpu = st.server.cpu_seconds() - cpu0
        pg_cpu = st.postgres_cpu_seconds() - pg0
    finally:
        client.close()
    total = sum(sum(len(r.classes) for r in s) for s in streams)
    stored = result.stored
    return {
        "label": label,
        "answer": "per request" if per_request else "one answer per stream",
        "streams": len(streams),
        "classes": total,
        "stored": stored,
        "rows_in_database": st.stored_classes(),
        "seconds": round(result.seconds, 3),
        "classes_per_second": round(stored / result.seconds) if result.seconds else 0,
        "server_cpu_us_per_class": round(server_cpu / max(stored, 1) * 1e6),
        "postgres_cpu_us_per_class": round(pg_cpu / max(stored, 1) * 1e6),
        "errors": result.errors,
        "timeline": [[round(t, 2), round(v)] for t, v in completions(result, 0.5)],
    }


def ingest(cfg: BenchSettings, admin_url: str, workdir: Path) -> dict[str, Any]:
    """a. Classes durably accepted per second, QBO sync paused, answered as soon as stored."""
    many = [
        make_stream(make_classes(f"m{i}", cfg.ingest_classes_per_stream), MAX_PER_REQUEST)
        for i in range(cfg.ingest_streams)
    ]
    big = [make_stream(make_classes("big", cfg.big_stream_classes), MAX_PER_REQUEST)]
    runs = []
    with stack(admin_url, workdir, "ingest", sandbox=_NO_LIMITS, server=PAUSED) as st:
        # Warm the server (imports, pool, prepared statements) outside the timed runs.
        _ingest_run(st, [make_stream(make_classes("warm", 200), 100)], 1, "warm-up")
        label = f"{cfg.ingest_streams:,} streams x {cfg.ingest_classes_per_stream}"
        runs.append(_ingest_run(st, many, cfg.ingest_concurrency, label))
        # Per-request answers acknowledge each ClassRequest of the long stream as it is stored
        # (the default single answer is measured in d. memory).
        label = f"1 stream x {cfg.big_stream_classes:,}"
        runs.append(_ingest_run(st, big, 1, label, per_request=True))
    return {"runs": runs, "concurrency": cfg.ingest_concurrency}


def _sync_stack_options(
    cfg: BenchSettings, *, ceiling: int, window: float, batch: bool
) -> tuple[dict[str, Any], dict[str, str]]:
    """Sandbox options and server environment for one sync run at ``ceiling`` requests/min."""
    per_window = max(1, round(ceiling * window / 60.0))
    sandbox = {
        "latency_ms": cfg.sync_latency_ms,
        "requests_per_minute": per_window,
        "rate_window": window,
        "max_in_flight": cfg.max_in_flight,
        # QBO: 40 batch requests/min per realm and app (docs/qbo.md, "Batch"), scaled like the rest.
        "batch_requests_per_minute": max(1, round(40 * per_window / 500)),
        "max_batch_items": 30,
    }
    server = {
        "QBO_REQUESTS_PER_MINUTE": str(ceiling),
        # The limiter counts in the same window as the sandbox (budgets scale with it).
        "QBO_RATE_WINDOW_SECONDS": str(window),
        "QBO_MAX_IN_FLIGHT": str(cfg.max_in_flight),
        "QBO_USE_BATCH": "true" if batch else "false",
        "SYNC_WORKERS": str(cfg.sync_workers),
        # A run lasts seconds: a 60 s throttle pause would only hide a 429 behind a timeout.
        "SYNC_THROTTLE_SECONDS": "5",
    }
    return sandbox, server


def _sync_rates(synced: list[float]) -> tuple[float, float]:
    """(steady, first-to-last) Classes per minute from the engine's "syncedAt" stamps.

    The stamps have ms precision; the middle 80 % of the run is the steady state, free of
    start-up (token, first claims) and of the tail.
    """
    steady = whole = 0.0
    if len(synced) >= 5:
        lo, hi = int(0.1 * (len(synced) - 1)), int(0.9 * (len(synced) - 1))
        if synced[hi] > synced[lo]:
            steady = (hi - lo) / (synced[hi] - synced[lo]) * 60.0
        if synced[-1] > synced[0]:
            whole = (len(synced) - 1) / (synced[-1] - synced[0]) * 60.0
    return steady, whole


# size: one run from start to report, read top to bottom (singles_too: _classes_ceiling)
def _sync_run(
    cfg: BenchSettings,
    admin_url: str,
    workdir: Path,
    *,
    name: str,
    ceiling: int,
    window: float,
    classes: int,
    batch: bool,
    singles_too: bool = False,
) -> dict[str, Any]:
    sandbox, server = _sync_stack_options(cfg, ceiling=ceiling, window=window, batch=batch)
    items_ceiling = _classes_ceiling(ceiling, batch=batch, singles_too=singles_too)
    streams = [
        make_stream(make_classes(f"{name}{i}", min(100, classes - i * 100)), 100)
        for i in range((classes + 99) // 100)
    ]
    expected = classes / items_ceiling * 60.0  # seconds at the ceiling
    with stack(admin_url, workdir, name, sandbox=sandbox, server=server) as st:
        client = LoadClient(st.server.address)
        cpu0 = (st.server.cpu_seconds(), st.sandbox.cpu_seconds(), st.postgres_cpu_seconds())
        client.run(streams, concurrency=4, wait_seconds=0)
        done = wait_until(
            lambda: _settled(st.job_counts()) >= classes,
            timeout=max(30.0, expected * 2.5),
            interval=0.25,
        )
        client.close()
        cpu = (st.server.cpu_seconds(), st.sandbox.cpu_seconds(), st.postgres_cpu_seconds())
        counters = st.realm_counters()
        jobs, failures = st.job_counts(), st.failure_codes()
        synced = st.synced_times()
    steady, whole = _sync_rates(synced)
    per_class = {
        part: round((after - before) / max(len(synced), 1) * 1e6)
        for part, before, after in zip(("server", "sandbox", "postgres"), cpu0, cpu, strict=True)
    }
    unit = "Classes/min" + ("" if not batch else " (batch items, single calls)")
    return {
        "name": name,
        "mode": "batch" if batch else "one Class per request",
        "classes": classes,
        "finished": done,
        "qbo_latency_ms": cfg.sync_latency_ms,
        "ceiling_requests_per_minute": ceiling,
        "ceiling_classes_per_minute": items_ceiling,
        "sandbox_window_seconds": window,
        "steady_classes_per_minute": round(steady),
        "first_to_last_classes_per_minute": round(whole),
        "ratio": round(steady / items_ceiling, 4) if items_ceiling else 0.0,
        "unit": unit,
        "requests": int(counters.get("requests", 0)),
        "throttled_429": int(counters.get("throttled", 0)),
        "max_in_flight_seen": int(counters.get("max_in_flight", 0)),
        "jobs": jobs,
        "failed_by_code": failures,
        "cpu_us_per_class": per_class,
        "timeline": _per_minute(synced, max(1, math.ceil(1200 / ceiling))),
    }


def _classes_ceiling(ceiling: int, *, batch: bool, singles_too: bool) -> int:
    """Classes/min the sandbox's limits allow: one per request, or 30 per batch request.

    QBO: 40 batch requests of 30 items per 500 requests/min (docs/qbo.md, "Batch"); each batch
    counts as one request, so ``singles_too`` adds the requests left over as single calls.
    """
    if not batch:
        return ceiling
    batches = min(ceiling, 40 * ceiling // 500)
    return batches * 30 + ((ceiling - batches) if singles_too else 0)


def _settled(jobs: dict[str, int]) -> int:
    return jobs.get("SYNCED", 0) + jobs.get("FAILED", 0)


def _per_minute(stamps: list[float], bin_seconds: int) -> list[list[float]]:
    """Classes/min in whole bins of ``bin_seconds`` from the first sync.

    A partial last bin would read low, so it is left out.
    """
    if not stamps:
        return []
    bins: dict[int, int] = {}
    for stamp in stamps:
        index = int((stamp - stamps[0]) / bin_seconds)
        bins[index] = bins.get(index, 0) + 1
    whole = int((stamps[-1] - stamps[0]) / bin_seconds) or len(bins)
    return [
        [float((i + 1) * bin_seconds), bins.get(i, 0) * 60.0 / bin_seconds] for i in range(whole)
    ]


SYNC_RUNS = ("sync-scaled", "sync-real", "sync-batch", "sync-real-batch")


def sync(cfg: BenchSettings, admin_url: str, workdir: Path) -> dict[str, Any]:
    """b. End-to-end Classes synced per minute vs the per-realm ceiling, with 429 counts."""
    scaled, real = cfg.sync_ceiling_per_minute, cfg.real_ceiling_per_minute
    window = cfg.scaled_window_seconds
    plans: dict[str, dict[str, Any]] = {
        "sync-scaled": {"ceiling": scaled, "window": window, "classes": cfg.sync_classes},
        "sync-real": {"ceiling": real, "window": 60.0, "classes": cfg.real_classes},
        "sync-batch": {
            "ceiling": scaled,
            "window": window,
            "classes": cfg.batch_classes,
            "batch": True,
        },
        # QBO's real limits with batches: 500 requests/min, 40 of them batches, 60 s window.
        "sync-real-batch": {
            "ceiling": real,
            "window": 60.0,
            "classes": cfg.real_batch_classes,
            "batch": True,
            "singles_too": True,
        },
    }
    chosen = cfg.sync_runs or SYNC_RUNS
    runs = [
        _sync_run(
            cfg,
            admin_url,
            workdir,
            name=name,
            ceiling=plans[name]["ceiling"],
            window=plans[name]["window"],
            classes=plans[name]["classes"],
            batch=plans[name].get("batch", False),
            singles_too=plans[name].get("singles_too", False),
        )
        for name in SYNC_RUNS
        if name in chosen
    ]
    return {"runs": runs}


def overhead(cfg: BenchSettings, admin_url: str, workdir: Path) -> dict[str, Any]:
    """c. One-Class streams, one after another: wall time minus the sandbox's fixed latency."""
    sandbox = {**_NO_LIMITS, "latency_ms": cfg.overhead_latency_ms}
    server = {**_FAR_CEILING, "QBO_USE_BATCH": "false"}
    latency = cfg.overhead_latency_ms / 1000.0
    synced_ms: list[float] = []
    stored_ms: list[float] = []
    failures = 0
    with stack(admin_url, workdir, "overhead", sandbox=sandbox, server=server) as st:
        client = LoadClient(st.server.address, channels=1)
        for i in range(5):  # warm-up: token refresh, connection pools, prepared statements
            client.send(make_stream(make_classes(f"w{i}", 1), 1))
        for i in range(cfg.overhead_calls):
            result = client.send(make_stream(make_classes(f"o{i}", 1), 1))
            failures += 0 if result.synced == 1 else 1
            synced_ms.append((result.seconds - latency) * 1000.0)
            result = client.send(make_stream(make_classes(f"n{i}", 1), 1), wait_seconds=0)
            stored_ms.append(result.seconds * 1000.0)
        client.close()
    return {
        "calls": cfg.overhead_calls,
        "qbo_latency_ms": cfg.overhead_latency_ms,
        "not_synced": failures,
        "synced_overhead_p50_ms": round(_percentile(synced_ms, 50), 2),
        "synced_overhead_p99_ms": round(_percentile(synced_ms, 99), 2),
        "synced_overhead_mean_ms": round(statistics.fmean(synced_ms), 2),
        "stored_only_p50_ms": round(_percentile(stored_ms, 50), 2),
        "stored_only_p99_ms": round(_percentile(stored_ms, 99), 2),
    }


def memory(cfg: BenchSettings, admin_url: str, workdir: Path) -> dict[str, Any]:
    """d. Server peak RSS while one stream carries N Classes (a fresh server process per mode)."""
    runs = []
    size = cfg.memory_stream_classes
    for mode in ("default", "per-request"):
        stream = make_stream(make_classes(f"mem{mode}", size), MAX_PER_REQUEST)
        with stack(admin_url, workdir, f"memory-{mode}", sandbox=_NO_LIMITS, server=PAUSED) as st:
            client = LoadClient(st.server.address, channels=1)
            client.send(make_stream(make_classes("warm", 100), 100), wait_seconds=0)
            baseline = st.server.rss_bytes()
            with Sampler(st.server.rss_bytes, interval=0.05) as sampler:
                started = time.perf_counter()
                result = client.send(stream, wait_seconds=0, per_request=mode == "per-request")
                seconds = time.perf_counter() - started
            peak = max(st.server.peak_rss_bytes(), *(v for _, v in sampler.samples))
            client.close()
        runs.append(
            {
                "classes": size,
                "mode": mode,
                "stored": result.stored,
                "seconds": round(seconds, 2),
                "baseline_rss_mb": round(baseline / 2**20, 1),
                "peak_rss_mb": round(peak / 2**20, 1),
                "growth_bytes_per_class": round((peak - baseline) / size),
                "timeline": [[round(t, 2), round(v / 2**20, 1)] for t, v in sampler.samples],
            }
        )
    return {"runs": runs, "wait_seconds": 0}
