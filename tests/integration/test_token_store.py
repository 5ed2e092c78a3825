"""Tokens in the database under concurrency: one refresh per realm across replicas."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import select

from classsync.domain import QboDisconnected
from classsync.qbo.oauth import make_auth_client_factory
from classsync.qbo.token_manager import TokenManager
from classsync.store.database import make_engine, make_session_factory
from classsync.store.models import QboRealm
from classsync.store.token_store import SqlAlchemyTokenStore, TokenCipher
from tests.fixtures.sandbox import DEV_CLIENT_ID, DEV_CLIENT_SECRET, REDIRECT_URI

pytestmark = pytest.mark.integration


def _manager(store: SqlAlchemyTokenStore, sandbox: Any, bootstrap: str | None) -> TokenManager:
    factory = make_auth_client_factory(
        DEV_CLIENT_ID, DEV_CLIENT_SECRET, REDIRECT_URI, sandbox.discovery_url, timeout_s=10
    )
    return TokenManager(store, factory, bootstrap_refresh_token=bootstrap)


def _refreshes(sandbox: Any) -> int:
    grants = sandbox.admin.counters()["token_grants"]
    return int(sum(v for k, v in grants.items() if "refresh" in k))


def test_replicas_share_one_refresh_and_persist_the_rotated_token(
    database_url: str, fresh_sandbox: Any
) -> None:
    realm = fresh_sandbox.admin.create_realm()
    realm_id = realm["realm_id"]
    engine = make_engine(database_url)
    # Two "replicas": separate managers and separate connection pools on the same database.
    stores = [
        SqlAlchemyTokenStore(make_session_factory(make_engine(database_url)), TokenCipher())
        for _ in range(2)
    ]
    managers = [_manager(s, fresh_sandbox, realm["refresh_token"]) for s in stores]
    first = managers[0].access_token(realm_id)
    assert _refreshes(fresh_sandbox) == 1
    stored = stores[0].load(realm_id)
    assert stored is not None
    assert stored.refresh_token != realm["refresh_token"]  # rotated, and saved before use
    assert managers[1].access_token(realm_id) == first  # read from the database, no refresh

    # QBO rejects that access token: 8 threads on each replica see a 401 at once.
    fresh_sandbox.admin.expire_access_tokens(realm_id)
    results: list[str] = []
    lock = threading.Lock()

    def on_401(manager: TokenManager) -> None:
        token = manager.refresh_after_401(realm_id, first)
        with lock:
            results.append(token)

    threads = [threading.Thread(target=on_401, args=(m,)) for m in managers for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 16
    assert len(set(results)) == 1
    assert results[0] != first
    assert _refreshes(fresh_sandbox) == 2  # exactly one more refresh for all 16 callers
    engine.dispose()


def test_invalid_grant_marks_the_realm_disconnected(database_url: str, fresh_sandbox: Any) -> None:
    realm = fresh_sandbox.admin.create_realm()
    store = SqlAlchemyTokenStore(make_session_factory(make_engine(database_url)), TokenCipher())
    manager = _manager(store, fresh_sandbox, realm["refresh_token"])
    rejected = manager.access_token(realm["realm_id"])
    fresh_sandbox.admin.revoke_tokens(realm["realm_id"])
    fresh_sandbox.admin.expire_access_tokens(realm["realm_id"])
    fresh = _manager(store, fresh_sandbox, None)  # a restarted replica: no cached token
    with pytest.raises(QboDisconnected) as error:
        fresh.refresh_after_401(realm["realm_id"], rejected)
    assert "classsync connect" in str(error.value)
    status = store.status(realm["realm_id"])
    assert status is not None
    assert status[0] == "DISCONNECTED"
    with make_session_factory(make_engine(database_url))() as session:
        row = session.scalars(select(QboRealm)).one()
        assert "classsync connect" in (row.status_message or "")


def test_the_bootstrap_token_is_offered_to_its_own_realm_only(
    database_url: str, fresh_sandbox: Any
) -> None:
    """QBO_REFRESH_TOKEN belongs to QBO_REALM_ID: another realm never refreshes with it."""
    own = fresh_sandbox.admin.create_realm()
    store = SqlAlchemyTokenStore(make_session_factory(make_engine(database_url)), TokenCipher())
    factory = make_auth_client_factory(
        DEV_CLIENT_ID, DEV_CLIENT_SECRET, REDIRECT_URI, fresh_sandbox.discovery_url, timeout_s=10
    )
    manager = TokenManager(
        store,
        factory,
        bootstrap_refresh_token=own["refresh_token"],
        bootstrap_realm_id=own["realm_id"],
    )
    with pytest.raises(QboDisconnected, match="not connected"):
        manager.access_token("9130359999999999999")
    assert manager.refresh_calls == 0
    assert store.is_connected("9130359999999999999") is False
    assert manager.access_token(own["realm_id"])
    assert store.is_connected(own["realm_id"]) is True
