"""Real `classsync serve` processes: SIGKILL mid-sync then restart; two replicas on one database."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from classsync.domain import SyncStatus
from classsync.store.models import QBClass, SyncJob
from tests.e2e.processes import ServerProcess, server_env
from tests.faults.harness import (
    Figures,
    accepted_ids,
    audit,
    chunked,
    class_tree,
    db_engine,
    job_counts,
    record,
    sandbox_figures,
    stream,
    wait_for,
    wait_until_settled,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# A killed worker's leases expire after 3 s, so its jobs are reclaimed quickly; the attempt budget
# is raised because test backoffs are ~60x shorter than production's (see test_qbo_faults.py).
_PROCESS_ENV = {
    "SYNC_LEASE_SECONDS": "3",
    "SYNC_MAX_ATTEMPTS": "40",
    "LOG_LEVEL": "INFO",
}


IN_PROGRESS = "IN_PROGRESS"  # a worker holds the job's lease (models.py, SyncJob.status)


def _in_flight(box: Any, realm_id: str) -> int:
    return int(box.admin.counters()["realms"].get(realm_id, {}).get("in_flight", 0))


def _synced(engine: Any) -> int:
    return job_counts(engine).get(SyncStatus.SYNCED.value, 0)


def _log_events(server: ServerProcess, event: str) -> list[dict[str, Any]]:
    found = []
    for line in server.output().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == event:
            found.append(entry)
    return found


def _log_count(server: ServerProcess, event: str) -> int:
    return len(_log_events(server, event))


def _replicas_seen(server: ServerProcess) -> int:
    changes = _log_events(server, "replica_share_changed")
    return int(changes[-1]["replicas"]) if changes else 1


def _check(
    request: pytest.FixtureRequest,
    engine: Any,
    box: Any,
    realm_id: str,
    *,
    fault: str,
    sent: int,
    accepted: set[str],
    recover: float,
    started: float,
    extra: dict[str, Any],
    max_generation: int = 1,
) -> dict[str, Any]:
    result = audit(engine, box.admin, realm_id, accepted, max_generation=max_generation)
    counters = sandbox_figures(box.admin, realm_id)
    record(
        Figures(
            test=request.node.nodeid,
            fault=fault,
            sent=sent,
            accepted=len(accepted),
            synced=result.synced,
            lost=result.lost,
            duplicates=result.duplicates,
            recover_seconds=recover,
            wall_seconds=time.monotonic() - started,
            extra={**counters, **extra},
        )
    )
    assert result.problems == []
    assert result.lost == 0
    assert result.duplicates == 0
    assert result.rows == result.synced == result.sandbox_classes
    return counters


def _in_progress_jobs(engine: Any) -> dict[str, str]:
    """fullName (QBO form, as sent) -> leaseOwner of every job a worker holds right now."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(QBClass.full_name, SyncJob.lease_owner)
            .join(SyncJob, SyncJob.class_id == QBClass.id)
            .where(SyncJob.status == IN_PROGRESS)
        )
        return {str(key): str(owner) for key, owner in rows}


def _qb_ids(engine: Any, keys: set[str]) -> dict[str, str | None]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(QBClass.full_name, QBClass.qb_id).where(QBClass.full_name.in_(keys))
        )
        return {str(key): qb_id for key, qb_id in rows}


def test_sigkill_mid_sync_then_restart(
    request: pytest.FixtureRequest,
    database_url: str,
    sandbox_factory: Callable[..., Any],
    started_at: float,
) -> None:
    """The killed server's in-flight writes reach QBO unrecorded; the restart finds, not redoes them.

    The sandbox applies a write after its latency even when the caller is gone, so the batches in
    flight at the SIGKILL land in QBO while their jobs stay IN_PROGRESS with a dead lease: the
    outcome-unknown case. The restarted server must reclaim those jobs and link them to the
    Classes QBO already holds (found by name), never create them a second time.
    """
    # 300 ms per QBO call keeps batches in flight almost all the time: the kill lands mid-call.
    box = sandbox_factory(latency_ms=300)
    realm = box.admin.create_realm()
    realm_id = realm["realm_id"]
    env = server_env(database_url, box, realm, **_PROCESS_ENV)
    engine = db_engine(database_url)
    first: ServerProcess | None = None
    second: ServerProcess | None = None
    try:
        first = ServerProcess(env)
        classes = class_tree("kill", 500)
        accepted = accepted_ids(stream(first.port, chunked(classes, 50)))
        assert len(accepted) == 500
        wait_for(lambda: _synced(engine) >= 100, timeout=60, what="100 Classes synced")
        first.process.kill()  # SIGKILL: no drain, no lease release
        killed_at = time.monotonic()
        first.kill()
        # The writes the dead server had in flight finish inside the sandbox.
        wait_for(lambda: _in_flight(box, realm_id) == 0, timeout=10, what="QBO calls to end")
        at_kill = _synced(engine)
        assert at_kill < 500, "the kill came too late to be mid-sync"
        held = _in_progress_jobs(engine)
        in_qbo = {c["FullyQualifiedName"]: c["Id"] for c in box.admin.classes(realm_id)}
        orphaned = {key: in_qbo[key] for key in held if key in in_qbo}
        assert orphaned, (
            f"no job was left IN_PROGRESS with its Class already in QBO ({len(held)} held): "
            "the kill did not land mid-write, so the test proves nothing"
        )
        created_before = sandbox_figures(box.admin, realm_id)["qbo_classes_created"]
        assert created_before == len(in_qbo)
        second = ServerProcess(env)
        recover = time.monotonic() - killed_at
        recover += wait_until_settled(engine, expected_rows=500, timeout=90)
        counters = _check(
            request,
            engine,
            box,
            realm_id,
            fault="b. SIGKILL mid-sync, restart (500)",
            sent=500,
            accepted=accepted,
            recover=recover,
            started=started_at,
            extra={"synced_at_kill": at_kill, "outcome_unknown_at_kill": len(orphaned)},
        )
        # Reclaimed and linked to the very Class the dead server created, not created again.
        assert _qb_ids(engine, set(orphaned)) == orphaned
        assert counters["qbo_classes_created"] == 500
    finally:
        for server in (first, second):
            if server is not None:
                server.kill()
        engine.dispose()


def test_two_server_processes_on_one_database_sync_2000_classes(
    request: pytest.FixtureRequest,
    database_url: str,
    sandbox_factory: Callable[..., Any],
    started_at: float,
) -> None:
    # QBO's limits are per realm. The replicas register in the database and each takes its
    # exact share of the budget it is configured with (classsync/sync/replicas.py, by rank), so
    # both get the realm's values. The sandbox counts in 6 s windows instead of 60 s so the run takes seconds; the
    # pair is configured for 3,000 requests/min (1,500 each), paced evenly: 300 requests and,
    # with the batch share the limiter derives (40 per 500), 24 batches per 6 s, under the
    # sandbox's 500 requests and 40 batches per window, so QBO should never throttle the pair.
    box = sandbox_factory(latency_ms=20, rate_window=6)
    realm = box.admin.create_realm()
    env = server_env(
        database_url,
        box,
        realm,
        **_PROCESS_ENV,
        QBO_REQUESTS_PER_MINUTE="3000",
        QBO_RATE_WINDOW_SECONDS="6",
    )
    engine = db_engine(database_url)
    servers: list[ServerProcess] = []
    try:
        for _ in range(2):
            servers.append(ServerProcess(env))
        # Both replicas have seen each other (heartbeats every 5 s) and halved their limits.
        for server in servers:
            wait_for(lambda s=server: _replicas_seen(s) == 2, timeout=15, what="2 replicas")
        classes = class_tree("duo", 2000)
        # 400 Classes go to both replicas at once: concurrent ingest of the same new names.
        shares = [classes[:1200], classes[800:]]
        replies: dict[int, set[str]] = {}
        errors: list[BaseException] = []

        def send(index: int) -> None:
            try:
                replies[index] = accepted_ids(
                    stream(servers[index].port, chunked(shares[index], 40), pause=0.02)
                )
            except BaseException as error:  # reported below
                errors.append(error)

        threads = [threading.Thread(target=send, args=(i,)) for i in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert not any(thread.is_alive() for thread in threads)
        # The same Class sent to both replicas is the same row (same id on both answers).
        overlap = replies[0] & replies[1]
        assert len(overlap) == 400
        accepted = replies[0] | replies[1]
        assert len(accepted) == 2000
        settle = wait_until_settled(engine, expected_rows=2000, timeout=120)
        synced_by = [_log_count(server, "class_synced") for server in servers]
        counters = _check(
            request,
            engine,
            box,
            realm["realm_id"],
            fault="e. two replicas, one PostgreSQL (2000)",
            sent=len(shares[0]) + len(shares[1]),
            accepted=accepted,
            recover=settle,
            started=started_at,
            extra={"synced_by_replica": synced_by},
            max_generation=2,  # 400 Classes were sent to both replicas
        )
        # Both replicas did part of the work, and splitting QBO's limits kept them unthrottled.
        assert all(count > 0 for count in synced_by)
        assert counters["qbo_throttled"] == 0
        assert counters["qbo_classes_created"] == 2000
    finally:
        for server in servers:
            server.kill()
        engine.dispose()
