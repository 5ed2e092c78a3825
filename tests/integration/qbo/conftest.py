"""Fixtures for the QBO adapter tests: a realm on the sandbox and a gateway/token stack over it."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from classsync.domain import ClassWrite, QboClass, RealmTokens
from classsync.qbo.gateway import QuickbooksGateway
from classsync.qbo.oauth import make_auth_client_factory
from classsync.qbo.token_manager import TokenManager
from classsync.qbo.token_storage import InMemoryTokenStore
from tests.fakes import FakeClock

CLIENT_ID = "sandbox-client-id"
CLIENT_SECRET = "sandbox-client-secret"
REDIRECT_URI = "http://127.0.0.1/callback"
_names = itertools.count(1)


def unique(prefix: str = "Class") -> str:
    """A class name no other test uses (tests share the session sandbox)."""
    return f"{prefix} {next(_names)}"


@dataclass
class Stack:
    """A gateway wired to a realm of a running sandbox, and the parts behind it."""

    sandbox: Any
    realm_id: str
    refresh_token: str
    access_token: str
    store: InMemoryTokenStore
    tokens: TokenManager
    gateway: QuickbooksGateway
    clock: FakeClock

    def counters(self) -> dict[str, Any]:
        """This realm's sandbox counters."""
        realms: dict[str, dict[str, Any]] = self.sandbox.admin.counters()["realms"]
        return realms.get(self.realm_id, {})

    def create(self, name: str | None = None, **fields: Any) -> QboClass:
        """Create a class and return what QBO answered."""
        return self.gateway.create(
            self.realm_id, ClassWrite(name=name or unique(), active=True, **fields)
        )


def build_stack(
    sandbox: Any,
    *,
    realm: dict[str, Any] | None = None,
    seed_tokens: bool = True,
    bootstrap_refresh_token: str | None = None,
    timeout_s: float = 5.0,
    refresh_margin_s: float = 300.0,
    on_commit: Callable[[str, RealmTokens], None] | None = None,
) -> Stack:
    """A realm (new unless given), its tokens in an in-memory store, a TokenManager, a gateway."""
    realm = realm or sandbox.admin.create_realm()
    # A clock the test moves by hand; it starts at real time, as the sandbox keeps real time.
    clock = FakeClock(start=datetime.now(UTC))
    store = InMemoryTokenStore(on_commit=on_commit)
    if seed_tokens:
        store.put(
            RealmTokens(
                realm_id=realm["realm_id"],
                refresh_token=realm["refresh_token"],
                access_token=realm["access_token"],
                access_expires_at=clock.utc() + timedelta(seconds=3600),
            )
        )
    factory = make_auth_client_factory(
        CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, sandbox.discovery_url, timeout_s=5.0
    )
    tokens = TokenManager(
        store,
        factory,
        bootstrap_refresh_token=bootstrap_refresh_token,
        refresh_margin_s=refresh_margin_s,
        clock=clock.utc,
    )
    gateway = QuickbooksGateway(
        tokens,
        api_base_url=sandbox.api_base_url,
        environment=sandbox.discovery_url,
        timeout_s=timeout_s,
        client_id=CLIENT_ID,
    )
    return Stack(
        sandbox=sandbox,
        realm_id=realm["realm_id"],
        refresh_token=realm["refresh_token"],
        access_token=realm["access_token"],
        store=store,
        tokens=tokens,
        gateway=gateway,
        clock=clock,
    )


@pytest.fixture
def stack(sandbox: Any) -> Stack:
    """A gateway on a new realm of the session sandbox."""
    return build_stack(sandbox)


@pytest.fixture
def fresh_stack(fresh_sandbox: Any) -> Stack:
    """A gateway on a new realm of a sandbox of its own (faults may be set freely)."""
    return build_stack(fresh_sandbox)
