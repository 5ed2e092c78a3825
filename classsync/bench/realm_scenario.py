"""e. Many realms: total Classes synced per minute, and a one-Class call to an idle realm."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from classsync.bench.harness import Stack, stack, wait_until
from classsync.bench.settings import BenchSettings
from classsync.bench.workload import LoadClient, make_classes, make_stream
from classsync.config import Settings
from classsync.realms import add_realm

# QBO's published per-realm limits (docs/qbo.md, "Limits and throttling"), unscaled.
_CEILING = 500
_BATCHES_PER_MINUTE = 40
_BATCH_ITEMS = 30


def _connect(st: Stack, count: int) -> list[str]:
    """``count`` new sandbox companies, connected to the server's database as an operator would."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=st.database_url,
        qbo_environment=f"{st.sandbox.base_url}/.well-known/openid_configuration",
        qbo_api_base_url=f"{st.sandbox.base_url}/v3",
        qbo_realm_id=st.realm_id,
        sandbox_autostart=False,
    )
    realm_ids = []
    for _ in range(count):
        realm = st.sandbox.admin.create_realm()
        add_realm(settings, realm["realm_id"], realm["refresh_token"])
        realm_ids.append(str(realm["realm_id"]))
    return realm_ids


def _probe(client: LoadClient, calls: int, busy: threading.Event) -> list[tuple[float, bool]]:
    """One-Class calls to the idle (default) realm, one after another, while ``busy`` is set."""
    seconds = []
    for index in range(calls):
        if not busy.is_set():
            break
        result = client.send(make_stream(make_classes(f"idle{index}", 1), 1))
        seconds.append((result.seconds, result.synced == 1))
    return seconds


def realms(cfg: BenchSettings, admin_url: str, workdir: Path) -> dict[str, Any]:
    """Every busy realm gets its Classes at once; the idle realm gets one-Class calls meanwhile."""
    total = cfg.realms * cfg.realm_classes
    with stack(admin_url, workdir, "realms", sandbox={}, server=_server(cfg)) as st:
        busy_ids = _connect(st, cfg.realms)
        # Only the busy companies are slow: the idle one answers at QBO's best.
        st.sandbox.admin.set_faults(latency_ms=cfg.realms_latency_ms, fault_realms=busy_ids)
        client = LoadClient(st.server.address)
        client.send(make_stream(make_classes("warm", 1), 1))  # token, pools, statements
        busy = threading.Event()
        busy.set()
        started = time.time()
        with ThreadPoolExecutor(max_workers=1) as prober:
            probes = prober.submit(_probe, client, cfg.realm_probe_calls, busy)
            streams = [make_stream(make_classes(f"r{i}", cfg.realm_classes), 100) for i in busy_ids]
            with ThreadPoolExecutor(max_workers=8) as senders:
                list(
                    senders.map(
                        lambda pair: client.send(pair[1], wait_seconds=0, realm_id=pair[0]),
                        zip(busy_ids, streams, strict=True),
                    )
                )
            done = wait_until(
                lambda: _settled(st) >= total + 1 + cfg.realm_probe_calls,
                timeout=max(60.0, total / 50),
                interval=0.25,
            )
            busy.clear()
            probed = probes.result()
        client.close()
        synced = [t for t in st.synced_times() if t >= started]
        jobs = st.job_counts()
    return _summary(cfg, done, synced, probed, jobs)


def _server(cfg: BenchSettings) -> dict[str, str]:
    return {
        "QBO_REQUESTS_PER_MINUTE": str(_CEILING),
        "QBO_MAX_IN_FLIGHT": str(cfg.max_in_flight),
        "SYNC_WORKERS": str(cfg.sync_workers),
        "SYNC_THROTTLE_SECONDS": "5",
    }


def _settled(st: Stack) -> int:
    jobs = st.job_counts()
    return jobs.get("SYNCED", 0) + jobs.get("FAILED", 0)


def _summary(
    cfg: BenchSettings,
    done: bool,
    synced: list[float],
    probed: list[tuple[float, bool]],
    jobs: dict[str, int],
) -> dict[str, Any]:
    span = synced[-1] - synced[0] if len(synced) > 1 else 0.0
    per_minute = (len(synced) - 1) / span * 60.0 if span else 0.0
    requests_ceiling = cfg.realms * _CEILING
    items_ceiling = cfg.realms * _BATCHES_PER_MINUTE * _BATCH_ITEMS
    ms = sorted(seconds * 1000.0 for seconds, _ in probed)
    return {
        "realms": cfg.realms,
        "classes_per_realm": cfg.realm_classes,
        "busy_realms_latency_ms": cfg.realms_latency_ms,
        "finished": done,
        "synced_per_minute": round(per_minute),
        "sum_of_ceilings_requests_per_minute": requests_ceiling,
        "sum_of_ceilings_batch_items_per_minute": items_ceiling,
        "ratio_to_request_ceilings": round(per_minute / requests_ceiling, 4),
        "idle_realm_calls": len(ms),
        "idle_realm_calls_not_synced": sum(1 for _, ok in probed if not ok),
        "idle_realm_p50_ms": round(_percentile(ms, 50), 1) if ms else None,
        "idle_realm_p99_ms": round(_percentile(ms, 99), 1) if ms else None,
        "idle_realm_max_ms": round(ms[-1], 1) if ms else None,
        "jobs": jobs,
    }


def _percentile(ordered: list[float], pct: float) -> float:
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]
