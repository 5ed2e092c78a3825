"""Composition root: Settings → database, token store, QBO gateway, sync engine, gRPC server."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from classsync.api.server import BuiltServer, build_server
from classsync.api.servicer import ClassServiceServicer
from classsync.api.webhooks import WebhookServer
from classsync.config import Settings
from classsync.qbo.endpoints import allow_plain_http_if_loopback
from classsync.qbo.gateway import QuickbooksGateway
from classsync.qbo.oauth import make_auth_client_factory
from classsync.qbo.token_manager import TokenManager
from classsync.store.class_reads import SqlAlchemyClassReader
from classsync.store.database import make_engine, make_session_factory
from classsync.store.migrate import upgrade
from classsync.store.remote_changes import SqlAlchemyRemoteUnitOfWork
from classsync.store.replicas import ReplicaRegistry
from classsync.store.token_store import SqlAlchemyTokenStore, TokenCipher
from classsync.store.unit_of_work import SqlAlchemyUnitOfWork
from classsync.sync.clock import SystemClock
from classsync.sync.conflicts import ConflictCounter
from classsync.sync.engine import SyncEngine
from classsync.sync.limiter import RateLimiter
from classsync.sync.pull import CdcPoller
from classsync.sync.push import WebhookIntake, WebhookWorker
from classsync.sync.reads import ClassReadService
from classsync.sync.remote_changes import RemoteChangeApplier
from classsync.sync.replicas import ReplicaHeartbeat
from classsync.sync.retry_policy import RetryPolicy
from classsync.sync.service import IngestService
from classsync.sync.settled import SettledBoard

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

    def uow(self) -> SqlAlchemyUnitOfWork:
        """A new unit of work."""
        return SqlAlchemyUnitOfWork(self.session_factory)

    def remote_uow(self) -> SqlAlchemyRemoteUnitOfWork:
        """A new unit of work over remote changes and the webhook inbox."""
        return SqlAlchemyRemoteUnitOfWork(self.session_factory)


def build_storage(settings: Settings, *, migrate: bool = True) -> Storage:
    """Open (and by default migrate) the database."""
    if migrate:
        upgrade(settings.database_url)
    engine = make_engine(settings.database_url, pool_size=settings.sync_workers + 10)
    session_factory = make_session_factory(engine)
    return Storage(
        engine, session_factory, SqlAlchemyTokenStore(session_factory, token_cipher(settings))
    )


def build_token_manager(settings: Settings, storage: Storage) -> TokenManager:
    """OAuth token lifecycle for every realm, persisted in the database."""
    allow_plain_http_if_loopback(settings.api_base_url, settings.intuit_environment)
    factory = make_auth_client_factory(
        settings.qbo_client_id,
        settings.qbo_client_secret.get_secret_value(),
        settings.qbo_redirect_uri,
        settings.intuit_environment,
        timeout_s=settings.qbo_timeout_seconds,
    )
    return TokenManager(
        storage.token_store, factory, bootstrap_refresh_token=settings.bootstrap_refresh_token
    )


@dataclass
class TwoWay:
    """Changes made in QBO flowing back: the CDC poller, the webhook listener and its worker.

    ``conflicts`` counts every field the conflict rule decided (for metrics).
    """

    conflicts: ConflictCounter
    applier: RemoteChangeApplier
    poller: CdcPoller | None
    worker: WebhookWorker
    webhooks: WebhookServer | None

    def start(self, *, syncing: bool) -> None:
        """Start the listener always (events are stored), the poller and worker when syncing."""
        if self.webhooks is not None:
            self.webhooks.start()
        if syncing:
            self.worker.start()
            if self.poller is not None:
                self.poller.start()

    def stop(self, timeout: float) -> None:
        """Stop listening first (Intuit delivers again later), then the background threads."""
        if self.webhooks is not None:
            self.webhooks.stop()
        self.worker.stop(timeout)
        if self.poller is not None:
            self.poller.stop(timeout)


def build_applier(storage: Storage, conflicts: ConflictCounter) -> RemoteChangeApplier:
    """Applies Classes changed in QBO to local rows under the conflict rule."""
    return RemoteChangeApplier(storage.remote_uow, conflicts)


def build_two_way(
    settings: Settings,
    storage: Storage,
    gateway: QuickbooksGateway,
    limiter: RateLimiter,
    applier: RemoteChangeApplier,
    conflicts: ConflictCounter,
) -> TwoWay:
    """Wire the pull (CDC) and push (webhook) paths for the configured realm."""
    remote_uow = storage.remote_uow

    def realms() -> list[str]:
        return [settings.qbo_realm_id]

    poller = None
    if settings.qbo_cdc_interval_seconds > 0:
        poller = CdcPoller(
            gateway,
            applier,
            remote_uow,
            limiter,
            realms,
            interval_seconds=settings.qbo_cdc_interval_seconds,
        )
    worker = WebhookWorker(
        gateway,
        applier,
        remote_uow,
        limiter,
        realms,
        unreadable=poller.poll_soon if poller is not None else lambda: None,
    )
    webhooks = None
    token = settings.qbo_webhook_verifier_token
    if settings.webhook_address is not None and token is not None:
        intake = WebhookIntake(remote_uow, worker.wake)
        webhooks = WebhookServer(
            settings.webhook_address,
            verifier_token=token.get_secret_value,
            accept=intake.accept,
        )
    return TwoWay(conflicts, applier, poller, worker, webhooks)


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

    @property
    def port(self) -> int:
        """The gRPC port actually bound."""
        return self.server.port

    def start(self) -> None:
        """Start syncing (unless disabled) and serving."""
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
        self.server.set_serving(False)
        stopped = self.server.server.stop(grace)
        if self.two_way is not None:
            self.two_way.stop(timeout=grace)
        self.engine.stop(timeout=grace)
        if self.settings.sync_enabled:
            self.heartbeat.stop()
        stopped.wait(grace + 1)
        self.storage.engine.dispose()
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
    gateway: QuickbooksGateway,
    limiter: RateLimiter,
    applier: RemoteChangeApplier,
) -> SyncEngine:
    """The sync engine and its retry policy."""
    policy = RetryPolicy(
        base_seconds=settings.sync_backoff_base_seconds,
        max_seconds=settings.sync_backoff_max_seconds,
        throttle_seconds=settings.sync_throttle_seconds,
        max_attempts=settings.sync_max_attempts,
        stale_retries=settings.sync_stale_retries,
    )
    return SyncEngine(
        storage.uow,
        gateway,
        limiter,
        policy,
        SettledBoard(),
        workers=settings.sync_workers,
        lease_seconds=settings.sync_lease_seconds,
        poll_seconds=settings.sync_poll_seconds,
        batch_size=settings.qbo_batch_size if settings.qbo_use_batch else 1,
        remote_changed=lambda realm_id, current: applier.apply(realm_id, [current]),
        conflicts=applier.conflicts,
    )


def build_app(settings: Settings, *, migrate: bool = True) -> App:
    """Wire the whole service from ``settings`` (nothing is started)."""
    storage = build_storage(settings, migrate=migrate)
    limiter = RateLimiter(
        max_in_flight=settings.qbo_max_in_flight,
        per_minute=settings.qbo_requests_per_minute,
        window_seconds=settings.qbo_rate_window_seconds,
    )
    gateway = build_gateway(settings, storage)
    conflicts = ConflictCounter()
    applier = build_applier(storage, conflicts)
    engine = build_engine(settings, storage, gateway, limiter, applier)
    ingest = IngestService(
        storage.uow,
        engine.board,
        engine.wake,
        realm_id=settings.qbo_realm_id,
        max_classes_per_request=settings.max_classes_per_request,
        conflicts=conflicts,
    )
    reads = ClassReadService(SqlAlchemyClassReader(storage.session_factory), engine.board)
    servicer = ClassServiceServicer(
        ingest,
        reads,
        wait_seconds=settings.response_wait_seconds,
        default_realm_id=settings.qbo_realm_id,
    )
    server = build_server(
        servicer,
        address=settings.grpc_address,
        max_workers=settings.grpc_max_workers,
        max_message_bytes=settings.max_message_bytes,
        auth_tokens=settings.auth_tokens,
        tls_cert_file=settings.grpc_tls_cert_file,
        tls_key_file=settings.grpc_tls_key_file,
    )
    heartbeat = ReplicaHeartbeat(
        ReplicaRegistry(storage.session_factory, ttl=timedelta(seconds=_HEARTBEAT_TTL_S)),
        limiter,
        engine.process_owner,
        interval=_HEARTBEAT_INTERVAL_S,
        clock=SystemClock().now,
    )
    two_way = build_two_way(settings, storage, gateway, limiter, applier, conflicts)
    return App(settings, storage, engine, ingest, server, heartbeat, two_way)
