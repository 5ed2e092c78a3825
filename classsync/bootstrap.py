"""Composition root: Settings → database, token store, QBO gateway, sync engine, gRPC server."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from classsync.api.server import BuiltServer, build_server
from classsync.api.servicer import ClassServiceServicer
from classsync.config import Settings
from classsync.observability.health import HealthMonitor, HealthReport, check
from classsync.observability.http import OpsHttpServer
from classsync.observability.metrics import Metrics, QueueCollector
from classsync.observability.runtime import Observability
from classsync.qbo.endpoints import allow_plain_http_if_loopback
from classsync.qbo.gateway import QuickbooksGateway
from classsync.qbo.oauth import make_auth_client_factory
from classsync.qbo.token_manager import TokenManager
from classsync.store.class_reads import SqlAlchemyClassReader
from classsync.store.database import dialect_name, make_engine, make_session_factory
from classsync.store.migrate import upgrade
from classsync.store.monitoring import StoreMonitor
from classsync.store.one_class import PostgresOneClassStore
from classsync.store.one_outcome import PostgresOneStatementOutcome
from classsync.store.replicas import ReplicaRegistry
from classsync.store.token_store import SqlAlchemyTokenStore, TokenCipher
from classsync.store.unit_of_work import SqlAlchemyRemoteUnitOfWork, SqlAlchemyUnitOfWork
from classsync.sync.clock import SystemClock
from classsync.sync.conflicts import ConflictCounter
from classsync.sync.engine import SyncEngine
from classsync.sync.limiter import RateLimiter
from classsync.sync.metered import MeteredChangeFeed, MeteredGateway, metered_uow_factory
from classsync.sync.metered_stores import MeteredOneClassStore, MeteredOneStatementOutcome
from classsync.sync.ports import (
    JobStatus,
    OneClassStore,
    OneStatementOutcome,
    QboGateway,
    SyncMetrics,
    UnitOfWork,
)
from classsync.sync.reads import ClassReadService
from classsync.sync.remote_changes import RemoteChangeApplier
from classsync.sync.remote_ports import QboChangeFeed
from classsync.sync.replicas import ReplicaHeartbeat
from classsync.sync.retry_policy import RetryPolicy
from classsync.sync.service import IngestService
from classsync.sync.settled import SettledBoard
from classsync.two_way import TwoWay, build_applier, build_two_way

log = structlog.get_logger(__name__)

# Replicas announce themselves this often; one silent for the TTL no longer holds a share of QBO.
_HEARTBEAT_INTERVAL_S = 2.0
_HEARTBEAT_TTL_S = 7.0


def token_cipher(settings: Settings) -> TokenCipher:
    """Fernet keys from TOKEN_ENCRYPTION_KEY (comma-separated, newest first), or none."""
    if settings.token_encryption_key is None:
        return TokenCipher()
    keys = [k.strip() for k in settings.token_encryption_key.get_secret_value().split(",")]
    return TokenCipher([k for k in keys if k])


@dataclass
class Storage:
    """The database engine and what is built directly on it."""

    engine: Engine
    session_factory: sessionmaker[Session]
    token_store: SqlAlchemyTokenStore
    sync_engine: Engine | None = None
    sync_session_factory: sessionmaker[Session] | None = None

    def uow(self) -> SqlAlchemyUnitOfWork:
        """A new unit of work."""
        return SqlAlchemyUnitOfWork(self.session_factory)

    def sync_uow(self) -> SqlAlchemyUnitOfWork:
        """A new unit of work for the sync engine, on its own pool when it has one."""
        return SqlAlchemyUnitOfWork(self.sync_session_factory or self.session_factory)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
        if self.sync_engine is not None:
            self.sync_engine.dispose()

    def remote_uow(self) -> SqlAlchemyRemoteUnitOfWork:
        """A new unit of work over remote changes and the webhook inbox."""
        return SqlAlchemyRemoteUnitOfWork(self.session_factory)


def build_storage(settings: Settings, *, migrate: bool = True, sync_pool: bool = False) -> Storage:
    """Open (and by default migrate) the database; with ``sync_pool``, the sync workers get a
    pool of their own, so that however many run they never make an ingest wait for a connection.
    It is sized by SYNC_WORKERS: a worker holds a connection for a claim or an outcome, never
    across a QBO call (docs/architecture.md, step 5)."""
    if migrate:
        upgrade(settings.database_url, realm_id=settings.qbo_realm_id)
    url, workers = settings.database_url, settings.sync_workers
    engine = make_engine(url, pool_size=10, max_overflow=5) if sync_pool else None
    engine = engine or make_engine(url, pool_size=workers + 10)
    sync_engine = make_engine(url, pool_size=workers, max_overflow=5) if sync_pool else None
    factory = make_session_factory(engine)
    sync_factory = make_session_factory(sync_engine) if sync_engine else None
    tokens = SqlAlchemyTokenStore(factory, token_cipher(settings))
    return Storage(engine, factory, tokens, sync_engine, sync_factory)


def auth_client_factory(settings: Settings) -> Callable[[], Any]:
    """intuit-oauth clients for the configured app (plain http only on loopback)."""
    allow_plain_http_if_loopback(settings.api_base_url, settings.intuit_environment)
    return make_auth_client_factory(
        settings.qbo_client_id,
        settings.qbo_client_secret.get_secret_value(),
        settings.qbo_redirect_uri,
        settings.intuit_environment,
        timeout_s=settings.qbo_timeout_seconds,
    )


def build_token_manager(settings: Settings, storage: Storage) -> TokenManager:
    """OAuth token lifecycle for every realm, persisted in the database."""
    return TokenManager(
        storage.token_store,
        auth_client_factory(settings),
        bootstrap_refresh_token=settings.bootstrap_refresh_token,
        bootstrap_realm_id=settings.qbo_realm_id,
    )


@dataclass
class App:
    """Everything `classsync serve` runs, wired together."""

    settings: Settings
    storage: Storage
    engine: SyncEngine
    ingest: IngestService
    server: BuiltServer
    heartbeat: ReplicaHeartbeat
    two_way: TwoWay | None = None
    observability: Observability | None = None

    @property
    def port(self) -> int:
        """The gRPC port actually bound."""
        return self.server.port

    def start(self) -> None:
        """Start syncing (unless disabled) and serving."""
        if self.observability is not None:
            self.observability.start()
        if self.settings.sync_enabled:
            self.heartbeat.start()
            self.engine.start()
        if self.two_way is not None:
            self.two_way.start(syncing=self.settings.sync_enabled)
        self.server.server.start()
        log.info("server_started", address=self.settings.grpc_address, port=self.port)

    def stop(self, grace: float | None = None) -> None:
        """Drain: refuse new calls, let calls in flight finish (bounded), stop syncing, close."""
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        if self.observability is not None:
            self.observability.stop()  # first, so no health check flips the drain back
        self.server.set_serving(False)
        stopped = self.server.server.stop(grace)
        if self.two_way is not None:
            self.two_way.stop(timeout=grace)
        self.engine.stop(timeout=grace)
        if self.settings.sync_enabled:
            self.heartbeat.stop()
        stopped.wait(grace + 1)
        self.storage.dispose()
        log.info("server_stopped")


def build_gateway(settings: Settings, storage: Storage) -> QuickbooksGateway:
    """The QBO adapter (shared by the sync engine and the two-way paths)."""
    return QuickbooksGateway(
        build_token_manager(settings, storage),
        api_base_url=settings.api_base_url,
        environment=settings.intuit_environment,
        client_id=settings.qbo_client_id,
        minor_version=settings.qbo_minor_version,
        timeout_s=settings.qbo_timeout_seconds,
    )


def build_engine(
    settings: Settings,
    storage: Storage,
    limiter: RateLimiter,
    uow_factory: Callable[[], UnitOfWork] | None = None,
    metrics: SyncMetrics | None = None,
    *,
    gateway: QuickbooksGateway | None = None,
    applier: RemoteChangeApplier | None = None,
) -> SyncEngine:
    """The sync engine, its QBO gateway (timed when ``metrics``) and its retry policy.

    With ``applier``, a change made in QBO found where the engine writes is merged into the row
    under the conflict rule first (docs/architecture.md, "Changes made in QBO").
    """
    qbo: QboGateway = gateway or build_gateway(settings, storage)
    if metrics is not None:
        qbo = MeteredGateway(qbo, metrics)
    policy = RetryPolicy(
        base_seconds=settings.sync_backoff_base_seconds,
        max_seconds=settings.sync_backoff_max_seconds,
        throttle_seconds=settings.sync_throttle_seconds,
        max_attempts=settings.sync_max_attempts,
        stale_retries=settings.sync_stale_retries,
    )
    return SyncEngine(
        uow_factory or storage.sync_uow,
        qbo,
        limiter,
        policy,
        SettledBoard(),
        workers=settings.sync_workers,
        max_workers=settings.sync_max_workers,
        lease_seconds=settings.sync_lease_seconds,
        poll_seconds=settings.sync_poll_seconds,
        batch_size=settings.qbo_batch_size if settings.qbo_use_batch else 1,
        remote_changed=None
        if applier is None
        else (lambda realm, qbo: applier.apply(realm, [qbo])),
        conflicts=None if applier is None else applier.conflicts,
        one_statement=one_outcome_store(storage, metrics),
    )


def build_grpc_server(
    settings: Settings, servicer: ClassServiceServicer, metrics: Metrics | None
) -> BuiltServer:
    """The gRPC server (not started) with its health, reflection and interceptors."""
    return build_server(
        servicer,
        address=settings.grpc_address,
        max_workers=settings.grpc_max_workers,
        max_message_bytes=settings.max_message_bytes,
        auth_tokens=settings.auth_tokens,
        tls_cert_file=settings.grpc_tls_cert_file,
        tls_key_file=settings.grpc_tls_key_file,
        call_recorder=metrics,
    )


def build_app(settings: Settings, *, migrate: bool = True) -> App:
    """Wire the whole service from ``settings`` (nothing is started)."""
    storage = build_storage(settings, migrate=migrate, sync_pool=True)
    limiter = RateLimiter(
        max_in_flight=settings.qbo_max_in_flight,
        per_minute=settings.qbo_requests_per_minute,
        window_seconds=settings.qbo_rate_window_seconds,
    )
    metrics = Metrics() if settings.metrics_address else None
    uow_factory: Callable[[], UnitOfWork] = storage.uow
    sync_uow_factory: Callable[[], UnitOfWork] = storage.sync_uow
    if metrics is not None:
        uow_factory = metered_uow_factory(storage.uow, metrics)
        sync_uow_factory = metered_uow_factory(storage.sync_uow, metrics)
    gateway = build_gateway(settings, storage)
    conflicts = ConflictCounter(forward_to=metrics)
    applier = build_applier(storage.remote_uow, conflicts)
    engine = build_engine(
        settings, storage, limiter, sync_uow_factory, metrics, gateway=gateway, applier=applier
    )
    ingest = IngestService(
        uow_factory,
        engine.board,
        engine.wake,
        realm_id=settings.qbo_realm_id,
        max_classes_per_request=settings.max_classes_per_request,
        realms=storage.token_store,
        conflicts=conflicts,
        one_class=one_class_store(storage, metrics),
        hand_off=engine.hand_off if settings.sync_enabled else None,
    )
    reads = ClassReadService(SqlAlchemyClassReader(storage.session_factory), engine.board)
    servicer = ClassServiceServicer(
        ingest,
        reads,
        wait_seconds=settings.response_wait_seconds,
        default_realm_id=settings.qbo_realm_id,
    )
    server = build_grpc_server(settings, servicer, metrics)
    heartbeat = ReplicaHeartbeat(
        ReplicaRegistry(storage.session_factory, ttl=timedelta(seconds=_HEARTBEAT_TTL_S)),
        limiter,
        engine.process_owner,
        interval=_HEARTBEAT_INTERVAL_S,
        clock=SystemClock().now,
    )
    feed: QboChangeFeed = gateway if metrics is None else MeteredChangeFeed(gateway, metrics)
    two_way = build_two_way(
        settings,
        storage.remote_uow,
        feed,
        limiter,
        applier,
        conflicts,
        storage.token_store.connected_realms,
    )
    observability = build_observability(settings, storage, server, metrics)
    return App(settings, storage, engine, ingest, server, heartbeat, two_way, observability)


def one_class_store(storage: Storage, metrics: SyncMetrics | None) -> OneClassStore | None:
    """Ingest's one-statement path for a new top-level Class, where the database has one."""
    if dialect_name(storage.engine) != "postgresql":
        return None
    store: OneClassStore = PostgresOneClassStore(storage.engine)
    return store if metrics is None else MeteredOneClassStore(store, metrics)


def one_outcome_store(storage: Storage, metrics: SyncMetrics | None) -> OneStatementOutcome | None:
    """The engine's one-statement record of a synced job, where the database has one."""
    if dialect_name(storage.engine) != "postgresql":
        return None
    outcome: OneStatementOutcome = PostgresOneStatementOutcome(storage.engine)
    return outcome if metrics is None else MeteredOneStatementOutcome(outcome, metrics)


def store_monitor(settings: Settings, storage: Storage) -> StoreMonitor:
    """The database facts health checks, metrics and `classsync status` read."""
    return StoreMonitor(
        storage.engine,
        storage.session_factory,
        settings.qbo_realm_id,
        assume_connected=settings.bootstrap_refresh_token is not None,
    )


def status_report(settings: Settings, storage: Storage) -> tuple[dict[str, Any], bool]:
    """What `classsync status` prints (the health checks' facts and the queue), and readiness."""
    health = check(store_monitor(settings, storage), settings.qbo_realm_id)
    report: dict[str, Any] = health.as_dict()
    report.pop("checked_at")
    if health.ready:  # reachable and migrated: the job and realm tables exist
        with storage.uow() as uow:
            counts = uow.jobs.counts()
            failed = uow.jobs.failed_counts()
            oldest = uow.jobs.oldest_pending()
            unsynced = uow.classes.count_unsynced_without_job()
        age = None if oldest is None else (SystemClock().now() - oldest).total_seconds()
        report["jobs"] = {status.value: counts.get(status.value, 0) for status in JobStatus}
        report["failed_by_code"] = dict(sorted(failed.items()))
        report["oldest_pending_age_seconds"] = None if age is None else round(age, 1)
        # Rows with no QBO Id and no job: never synced, waiting for `classsync adopt`.
        report["unsynced_without_job"] = unsynced
        connection = storage.token_store.status(settings.qbo_realm_id)
        report["realm"]["status"] = connection[0] if connection else "NOT_CONNECTED"
        from classsync.realms import realm_list  # it builds on this module

        # Every realm: connection, last refresh, backlog and jobs (never a token).
        report["realms"] = realm_list(settings, storage)
        with storage.remote_uow() as remote:
            mark = remote.changes.cdc_mark(settings.qbo_realm_id)
            report["changes_from_qbo"] = {
                "cdc_changed_since": None if mark is None else mark.isoformat(),
                "webhook_events_waiting": remote.inbox.waiting(),
            }
    return report, health.ready


def build_observability(
    settings: Settings, storage: Storage, server: BuiltServer, metrics: Metrics | None
) -> Observability:
    """The health checker (feeding gRPC health) and, with metrics on, the HTTP endpoint."""
    monitor_store = store_monitor(settings, storage)

    def publish(report: HealthReport) -> None:
        server.set_serving(report.database_reachable)
        if report.realm_connected is not None:  # unknown until the database was reached once
            server.set_qbo_connected(report.realm_connected)

    monitor = HealthMonitor(
        monitor_store,
        settings.qbo_realm_id,
        interval=settings.health_check_seconds,
        on_change=publish,
    )
    http = None
    if metrics is not None:
        metrics.watch_queue(QueueCollector(monitor_store, settings.qbo_realm_id))
        metrics.watch_readiness(lambda: monitor.report.ready)
        http = OpsHttpServer(settings.metrics_address, metrics.registry, lambda: monitor.report)
    return Observability(monitor, http)
