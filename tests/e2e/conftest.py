"""End-to-end harness: the real server on 127.0.0.1:0, a real channel, the sandbox over HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from sqlalchemy import select

from classsync.api._generated import class_service_pb2 as pb
from classsync.api._generated import class_service_pb2_grpc as pb_grpc
from classsync.bootstrap import App, build_app
from classsync.config import Settings
from classsync.store.models import QBClass, SyncJob


@dataclass
class Service:
    """A running classsync wired to one sandbox realm and one fresh database."""

    app: App
    channel: grpc.Channel
    stub: pb_grpc.ClassServiceStub
    realm_id: str
    sandbox: Any
    settings: Settings
    extra_channels: list[grpc.Channel] = field(default_factory=list)

    def send(
        self,
        *requests: list[dict[str, Any]],
        per_request: bool = False,
        timeout: float = 30.0,
        metadata: list[tuple[str, str]] | None = None,
    ) -> list[pb.ClassResponse]:
        """Stream ClassRequests (each a list of Class dicts) and collect every response."""
        meta = list(metadata or [])
        if per_request:
            meta.append(("x-classsync-response", "per-request"))
        messages = [pb.ClassRequest(classes=[pb.Class(**c) for c in r]) for r in requests]
        return list(self.stub.CreateClass(iter(messages), metadata=meta, timeout=timeout))

    def rows(self) -> list[QBClass]:
        """Every QBClass row."""
        with self.app.storage.session_factory() as session:
            return list(session.scalars(select(QBClass)))

    def jobs(self) -> list[SyncJob]:
        """Every job row."""
        with self.app.storage.session_factory() as session:
            return list(session.scalars(select(SyncJob)))

    def qbo_classes(self) -> list[dict[str, Any]]:
        """The realm's classes as the sandbox holds them."""
        return list(self.sandbox.admin.classes(self.realm_id))


def klass(name: str, full_name: str | None = None, **fields: Any) -> dict[str, Any]:
    """A wire Class dict shaped like the seed's example."""
    full = name if full_name is None else full_name
    base: dict[str, Any] = {
        "qb_id": "",
        "name": name,
        "full_name": full,
        "is_sub_class": (":" in full) or (" / " in full),
        "is_active": True,
        "domain_source": "QBO",
        "version_token": 0,
        "is_sparse": False,
    }
    base.update(fields)
    return base


def service_settings(
    database_url: str, sandbox: Any, realm: dict[str, Any], **overrides: Any
) -> Settings:
    """Settings for a test server against ``sandbox`` (short timings so tests stay quick)."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "grpc_address": "127.0.0.1:0",
        "qbo_environment": sandbox.discovery_url,
        "qbo_api_base_url": sandbox.api_base_url,
        "qbo_realm_id": realm["realm_id"],
        "qbo_refresh_token": realm["refresh_token"],
        "sync_workers": 4,
        "sync_poll_seconds": 0.2,
        "sync_backoff_base_seconds": 0.1,
        "sync_backoff_max_seconds": 1.0,
        "sync_throttle_seconds": 1.0,
        "response_wait_seconds": 20.0,
        "shutdown_grace_seconds": 5.0,
        "qbo_timeout_seconds": 5.0,
        "sandbox_autostart": False,
        # No CDC poll unless a test asks for one: its catch-up at start would import (and log)
        # whatever a test arranges in QBO or the table by hand (tests/e2e/test_two_way.py opts in).
        "qbo_cdc_interval_seconds": 0,
        "metrics_address": "127.0.0.1:0",  # several servers per test: each picks a free port
        "health_check_seconds": 0.5,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def service_factory(database_url: str, sandbox: Any) -> Iterator[Callable[..., Service]]:
    """Start classsync servers (same database, same realm unless told otherwise); stop them all."""
    started: list[Service] = []
    realm = sandbox.admin.create_realm()

    def start(
        *,
        db_url: str | None = None,
        sandbox_: Any = None,
        realm_: dict | None = None,
        **overrides: Any,
    ) -> Service:
        box = sandbox_ or sandbox
        chosen_realm = realm_ or realm
        settings = service_settings(db_url or database_url, box, chosen_realm, **overrides)
        app = build_app(settings)
        app.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{app.port}")
        service = Service(
            app=app,
            channel=channel,
            stub=pb_grpc.ClassServiceStub(channel),
            realm_id=chosen_realm["realm_id"],
            sandbox=box,
            settings=settings,
        )
        started.append(service)
        return service

    yield start
    for service in started:
        service.channel.close()
        service.app.stop(grace=1.0)


@pytest.fixture
def service(service_factory: Callable[..., Service]) -> Service:
    """One running classsync."""
    return service_factory()
