"""Faults on our side of QBO: the caller cancels mid-stream; the database connections are killed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from sqlalchemy import func, select, text

from classsync.api._generated import class_service_pb2 as pb
from classsync.api._generated import class_service_pb2_grpc as pb_grpc
from classsync.store.models import QBClass
from tests.e2e.conftest import Service
from tests.faults.harness import (
    NO_WAIT,
    Figures,
    accepted_ids,
    audit,
    chunked,
    class_tree,
    db_engine,
    record,
    requests_of,
    sandbox_figures,
    stream,
    wait_for,
    wait_until_settled,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

_SETTINGS: dict[str, Any] = {"sync_lease_seconds": 3.0, "sync_max_attempts": 40}


def _row_count(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(QBClass)).scalar_one())


def _check(
    request: pytest.FixtureRequest,
    engine: Any,
    svc: Service,
    *,
    fault: str,
    sent: int,
    accepted: set[str],
    recover: float,
    started: float,
    extra: dict[str, Any],
    accepted_count: int | None = None,
) -> None:
    result = audit(engine, svc.sandbox.admin, svc.realm_id, accepted)
    counters = sandbox_figures(svc.sandbox.admin, svc.realm_id)
    record(
        Figures(
            test=request.node.nodeid,
            fault=fault,
            sent=sent,
            accepted=len(accepted) if accepted_count is None else accepted_count,
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
    assert counters["qbo_classes_created"] == result.sandbox_classes


def _row_keys(engine: Any) -> set[str]:
    """The full names stored (as sent, in QBO form here): comparable with QBO's names."""
    with engine.connect() as conn:
        return {str(name) for name in conn.execute(select(QBClass.full_name)).scalars()}


def test_caller_cancelling_mid_stream_still_syncs_what_was_committed(
    request: pytest.FixtureRequest,
    service_factory: Callable[..., Service],
    sandbox_factory: Callable[..., Any],
    started_at: float,
) -> None:
    """Classes stored before the cancel reach QBO after it; Classes never stored never do."""
    # 500 ms per QBO call: the sync lags the stream, so the cancel lands while most stored
    # Classes are still on their way to QBO (asserted below, else the test proves nothing).
    box = sandbox_factory(latency_ms=500)
    realm = box.admin.create_realm()
    svc = service_factory(sandbox_=box, realm_=realm, **_SETTINGS)
    # Requests of 10 = one parent and its nine sub-classes, so each request stands alone.
    classes = class_tree("cancel", 1000)
    chunks = chunked(classes, 10)
    yielded = 0

    def paced_requests() -> Iterator[pb.ClassRequest]:
        nonlocal yielded
        for message in requests_of(chunks):
            yielded += 1
            yield message
            time.sleep(0.05)  # pacing of the caller's stream, not a synchronisation

    engine = db_engine(svc.settings.database_url)
    try:
        call = pb_grpc.ClassServiceStub(svc.channel).CreateClass(
            paced_requests(), metadata=[NO_WAIT], timeout=60
        )
        wait_for(lambda: _row_count(engine) >= 200, timeout=30, what="200 Classes committed")
        call.cancel()
        cancelled_at = time.monotonic()
        # Read after the cancel, in this order: what was stored, then what QBO holds.
        stored_at_cancel = _row_keys(engine)
        in_qbo_at_cancel = {c["FullyQualifiedName"] for c in box.admin.classes(svc.realm_id)}
        with pytest.raises(grpc.RpcError) as error:
            list(call)
        assert error.value.code() == grpc.StatusCode.CANCELLED
        reached_qbo_later = stored_at_cancel - in_qbo_at_cancel
        assert reached_qbo_later, "QBO already held every stored Class when the cancel landed"
        # Settled: every stored job is SYNCED (a request still on the wire at the cancel has
        # long been stored or dropped by now: settling takes several QBO round trips).
        recover = time.monotonic() - cancelled_at
        recover += wait_until_settled(engine, expected_rows=len(stored_at_cancel), timeout=60)
        committed = _row_keys(engine)
        assert stored_at_cancel <= committed
        assert 200 <= len(committed) <= yielded * 10 < 1000
        assert len(committed) % 10 == 0  # a ClassRequest is stored whole or not at all
        in_qbo = {c["FullyQualifiedName"] for c in box.admin.classes(svc.realm_id)}
        assert reached_qbo_later <= in_qbo  # synced after the caller went away
        # Exactly the stored Classes: the cancelled rest of the stream never reached QBO.
        assert in_qbo == committed
        _check(
            request,
            engine,
            svc,
            fault="f. caller cancels mid-stream",
            sent=yielded * 10,
            accepted=set(),  # no answer ever came: what was committed is what was accepted
            accepted_count=len(committed),
            recover=recover,
            started=started_at,
            extra={
                "committed": len(committed),
                "reached_qbo_after_cancel": len(reached_qbo_later),
            },
        )
    finally:
        engine.dispose()


def test_database_connections_killed_mid_run(
    request: pytest.FixtureRequest,
    service_factory: Callable[..., Service],
    sandbox_factory: Callable[..., Any],
    started_at: float,
) -> None:
    box = sandbox_factory(latency_ms=20)
    realm = box.admin.create_realm()
    svc = service_factory(sandbox_=box, realm_=realm, **_SETTINGS)
    database = svc.settings.database_url.rsplit("/", 1)[-1]
    engine = db_engine(svc.settings.database_url)
    kills: list[int] = []
    stop = threading.Event()

    def killer() -> None:
        # Every backend of the service's database but our own, over and over.
        while not stop.wait(0.7) and len(kills) < 6:
            with engine.connect() as conn:
                killed = conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = :db AND pid <> pg_backend_pid()"
                    ),
                    {"db": database},
                ).scalar_one()
            kills.append(int(killed))

    classes = class_tree("dbkill", 500)
    thread = threading.Thread(target=killer)
    try:
        thread.start()
        replies = stream(svc.app.port, chunked(classes, 10), pause=0.08)
        thread.join(15)
        last_kill = time.monotonic()
        accepted = accepted_ids(replies)
        assert len(accepted) == 500
        assert len(kills) == 6
        assert sum(kills) > 0  # connections really were killed
        wait_until_settled(engine, expected_rows=500, timeout=60)
        recover = time.monotonic() - last_kill
        _check(
            request,
            engine,
            svc,
            fault="g. DB backends killed 6x (500)",
            sent=500,
            accepted=accepted,
            recover=recover,
            started=started_at,
            extra={"backends_killed": kills},
        )
    finally:
        stop.set()
        thread.join(15)
        engine.dispose()
