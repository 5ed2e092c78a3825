"""Engine bookkeeping under faults: leases outlive slow calls; lost outcome writes are retried."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from classsync.bootstrap import build_storage, build_token_manager
from classsync.domain import ClassInput, validate
from classsync.qbo.gateway import QuickbooksGateway
from classsync.store.unit_of_work import SqlAlchemyUnitOfWork
from classsync.sync.clock import SystemClock
from classsync.sync.engine import SyncEngine
from classsync.sync.limiter import RateLimiter
from classsync.sync.retry_policy import RetryPolicy
from classsync.sync.service import Accepted, IngestService
from classsync.sync.settled import SettledBoard
from tests.e2e.conftest import Service, service_settings
from tests.faults.harness import (
    audit,
    chunked,
    class_tree,
    db_engine,
    stream,
    wait_for,
    wait_until_settled,
)

pytestmark = pytest.mark.e2e


def _in_flight(box: Any, realm_id: str) -> int:
    return int(box.admin.counters()["realms"].get(realm_id, {}).get("in_flight", 0))


def test_a_call_longer_than_the_lease_is_not_redone_by_a_sibling_worker(
    service_factory: Callable[..., Service], sandbox_factory: Callable[..., Any]
) -> None:
    # Every QBO call takes 2.5 s, the lease is 1 s: without lease renewal a sibling worker
    # reclaims the job mid-call as "outcome unknown" and looks it up / writes it a second time.
    box = sandbox_factory(latency_ms=2500)
    realm = box.admin.create_realm()
    svc = service_factory(
        sandbox_=box, realm_=realm, sync_lease_seconds=1.0, sync_workers=3, qbo_timeout_seconds=10
    )
    classes = class_tree("lease", 6, fanout=1)  # six top-level Classes: one batch
    stream(svc.app.port, chunked(classes, 6))
    engine = db_engine(svc.settings.database_url)
    try:
        wait_until_settled(engine, expected_rows=6, timeout=30)
        # A sibling that reclaimed the job would have taken its lease, so the job settles only
        # once the sibling's call ends; any call still under way is in flight in the sandbox
        # (counted from its arrival), and the sandbox counts it once answered.
        wait_for(lambda: _in_flight(box, svc.realm_id) == 0, timeout=10, what="QBO calls to end")
        result = audit(engine, box.admin, svc.realm_id)
    finally:
        engine.dispose()
    assert result.problems == []
    requests = {
        name: by_status
        for name, by_status in box.admin.counters()["requests"].items()
        if not name.startswith("oauth.")
    }
    # One batch wrote all six; nothing was looked up or written again.
    assert set(requests) == {"batch"}
    assert sum(requests["batch"].values()) == 1


class _KillOnRecordUnitOfWork(SqlAlchemyUnitOfWork):
    """A real unit of work whose first "job SYNCED" commit loses its database connection.

    The backend is terminated server-side (pg_terminate_backend on its own pid), exactly what
    an operator, a failover or a network cut does; the commit then fails with OperationalError.
    """

    armed = True
    lock = threading.Lock()

    def __enter__(self) -> _KillOnRecordUnitOfWork:
        uow = super().__enter__()
        self._recording = False
        record_synced = self.jobs.record_synced

        def recording(*args: Any, **kwargs: Any) -> Any:
            self._recording = True
            return record_synced(*args, **kwargs)

        self.jobs.record_synced = recording  # type: ignore[method-assign]
        record_synced_many = self.jobs.record_synced_many

        def recording_many(*args: Any, **kwargs: Any) -> Any:
            # A batch's outcomes are recorded together in one transaction.
            self._recording = True
            return record_synced_many(*args, **kwargs)

        self.jobs.record_synced_many = recording_many  # type: ignore[method-assign]
        return uow

    def commit(self) -> None:
        """Kill our own backend before the first commit that would record a sync."""
        with self.lock:
            fire = self._recording and _KillOnRecordUnitOfWork.armed
            if fire:
                _KillOnRecordUnitOfWork.armed = False
        if fire:
            self._session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        super().commit()


def test_a_lost_connection_while_recording_a_sync_is_retried_not_left_to_the_lease(
    database_url: str, sandbox_factory: Callable[..., Any]
) -> None:
    box = sandbox_factory()
    realm = box.admin.create_realm()
    # A lease far longer than the test's wait: only an immediate retry of the write can pass.
    settings = service_settings(database_url, box, realm)
    storage = build_storage(settings, migrate=False)
    gateway = QuickbooksGateway(
        build_token_manager(settings, storage),
        api_base_url=settings.api_base_url,
        environment=settings.intuit_environment,
        client_id=settings.qbo_client_id,
        timeout_s=5.0,
    )
    engine = SyncEngine(
        lambda: _KillOnRecordUnitOfWork(storage.session_factory),
        gateway,
        RateLimiter(),
        RetryPolicy(base_seconds=0.1, max_seconds=1.0),
        SettledBoard(),
        workers=1,
        lease_seconds=60.0,
        poll_seconds=0.1,
        batch_size=30,
    )
    _KillOnRecordUnitOfWork.armed = True
    with storage.uow() as uow:
        items = [validate(ClassInput(name=f"Rec{i}")) for i in range(5)]
        uow.classes.save_batch(items, realm["realm_id"], SystemClock().now())  # type: ignore[arg-type]
        uow.commit()
    db = db_engine(database_url)
    engine.start()
    try:
        wait_until_settled(db, expected_rows=5, timeout=10)
        result = audit(db, box.admin, realm["realm_id"])
    finally:
        engine.stop(timeout=5)
        storage.engine.dispose()
        db.dispose()
    assert not _KillOnRecordUnitOfWork.armed  # the connection really was killed mid-record
    assert result.problems == []
    api_calls = {n for n in box.admin.counters()["requests"] if not n.startswith("oauth.")}
    assert api_calls == {"batch"}  # recorded from memory: no "outcome unknown" look-ups


class _KillOnReadUnitOfWork(SqlAlchemyUnitOfWork):
    """A real unit of work whose connection is terminated (from outside) as soon as it opens."""

    armed = False
    admin: Any = None

    def __enter__(self) -> _KillOnReadUnitOfWork:
        super().__enter__()
        if _KillOnReadUnitOfWork.armed:
            _KillOnReadUnitOfWork.armed = False
            pid = self._session.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with _KillOnReadUnitOfWork.admin.connect() as conn:
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        return self


def test_a_lost_connection_while_reporting_answers_pending_instead_of_failing_the_call(
    database_url: str,
) -> None:
    storage = build_storage(service_settings(database_url, _NoSandbox(), _NO_REALM), migrate=False)
    admin = db_engine(database_url)
    _KillOnReadUnitOfWork.admin = admin
    ingest = IngestService(
        lambda: _KillOnReadUnitOfWork(storage.session_factory),
        SettledBoard(),
        lambda _realm_id: None,
        realm_id="1",
        max_classes_per_request=10,
    )
    try:
        results = ingest.ingest(
            [ClassInput(name="Stored"), ClassInput(name="AlsoStored")],
            first_stream_index=0,
            request_number=1,
        )
        accepted = [r for r in results if isinstance(r, Accepted)]
        assert len(accepted) == 2
        _KillOnReadUnitOfWork.armed = True
        outcomes = ingest.settle(accepted, timeout=0)
    finally:
        storage.engine.dispose()
        admin.dispose()
    assert not _KillOnReadUnitOfWork.armed  # the reporting connection really was killed
    # Both are stored and will sync: the caller hears PENDING, not an error for the whole call.
    assert [(o.status.value, bool(o.id)) for o in outcomes] == [("PENDING", True)] * 2


class _NoSandbox:
    discovery_url = "http://127.0.0.1:9/.well-known/openid_configuration"
    api_base_url = "http://127.0.0.1:9/v3"


_NO_REALM = {"realm_id": "1", "refresh_token": "unused"}
