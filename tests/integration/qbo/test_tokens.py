"""TokenManager vs the sandbox OAuth endpoints: refresh timing, 401 bursts, rotation, revocation."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from classsync.domain import QboDisconnected, RealmTokens
from classsync.qbo.oauth import authorization_url, exchange_code, make_auth_client_factory
from tests.integration.qbo.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    Stack,
    build_stack,
)

pytestmark = pytest.mark.integration


def _refreshes(stack: Stack) -> int:
    return int(stack.counters().get("token_refreshes", 0))


def test_stored_token_is_used_until_it_nears_expiry_then_refreshed(stack: Stack) -> None:
    assert stack.tokens.access_token(stack.realm_id) == stack.access_token
    stack.clock.advance(3600 - 301)
    assert stack.tokens.access_token(stack.realm_id) == stack.access_token
    assert _refreshes(stack) == 0

    stack.clock.advance(2)  # now inside the 300 s margin
    fresh = stack.tokens.access_token(stack.realm_id)
    assert fresh != stack.access_token
    assert _refreshes(stack) == 1
    stored = stack.store.load(stack.realm_id)
    assert stored is not None
    assert stored.access_token == fresh
    assert stored.access_expires_at is not None
    assert stored.access_expires_at > stack.clock.utc() + timedelta(seconds=3000)
    # ...and the refreshed token works against the API.
    created = stack.create()
    assert stack.gateway.read(stack.realm_id, created.id) == created


def test_a_401_causes_one_refresh_and_one_retry(stack: Stack) -> None:
    created = stack.create()
    stack.sandbox.admin.expire_access_tokens(stack.realm_id)
    assert stack.gateway.read(stack.realm_id, created.id) == created
    assert _refreshes(stack) == 1
    assert stack.tokens.refresh_calls == 1


def test_concurrent_401s_cause_exactly_one_refresh(stack: Stack) -> None:
    created = stack.create()
    stack.sandbox.admin.expire_access_tokens(stack.realm_id)
    workers = 8
    barrier = threading.Barrier(workers)
    results: list[Any] = []

    def read() -> None:
        barrier.wait()
        try:
            results.append(stack.gateway.read(stack.realm_id, created.id))
        except Exception as exc:  # collected and asserted below
            results.append(exc)

    threads = [threading.Thread(target=read) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == [created] * workers
    assert _refreshes(stack) == 1
    assert stack.tokens.refresh_calls == 1


def test_rotated_refresh_token_is_committed_before_the_new_access_token_is_used(
    sandbox: Any,
) -> None:
    commits: list[tuple[RealmTokens, int]] = []
    holder: dict[str, Stack] = {}

    def on_commit(realm_id: str, tokens: RealmTokens) -> None:
        commits.append((tokens, holder["stack"].counters()["requests"]))

    stack = holder["stack"] = build_stack(sandbox, on_commit=on_commit)
    created = stack.create()
    stack.sandbox.admin.expire_access_tokens(stack.realm_id)
    stack.gateway.read(stack.realm_id, created.id)

    assert len(commits) == 1
    committed, requests_at_commit = commits[0]
    assert committed.refresh_token != stack.refresh_token  # the sandbox rotated it
    assert committed.access_token != stack.access_token
    # Exactly one API request (the retry with the new token) happened after the commit.
    assert stack.counters()["requests"] == requests_at_commit + 1
    # The superseded refresh token is dead (grace 0): only the saved one can refresh now.
    stale_store_stack = build_stack(
        sandbox,
        realm={
            "realm_id": stack.realm_id,
            "refresh_token": stack.refresh_token,
            "access_token": "expired",
        },
    )
    stale_store_stack.clock.advance(4000)
    with pytest.raises(QboDisconnected):
        stale_store_stack.tokens.access_token(stack.realm_id)
    stack.clock.advance(4000)
    assert stack.tokens.access_token(stack.realm_id) != committed.access_token


def test_invalid_grant_marks_the_realm_disconnected(stack: Stack) -> None:
    created = stack.create()
    stack.sandbox.admin.revoke_tokens(stack.realm_id)
    with pytest.raises(QboDisconnected) as caught:
        stack.gateway.read(stack.realm_id, created.id)
    assert "classsync connect" in str(caught.value)
    note = stack.store.disconnected_message(stack.realm_id)
    assert note is not None
    assert "classsync connect" in note
    # A disconnected realm does not hammer the token endpoint on every call.
    calls = stack.tokens.refresh_calls
    with pytest.raises(QboDisconnected):
        stack.gateway.read(stack.realm_id, created.id)
    assert stack.tokens.refresh_calls == calls


def test_bootstrap_token_is_tried_once_when_the_stored_one_is_refused(sandbox: Any) -> None:
    dev = sandbox.admin.config()
    realm = {
        "realm_id": dev.get("dev_realm_id", "9130350000000000001"),
        "refresh_token": "not-a-real-refresh-token",
        "access_token": "not-a-real-access-token",
    }
    stack = build_stack(sandbox, realm=realm, bootstrap_refresh_token="sandbox-dev-refresh-token")
    stack.clock.advance(4000)  # the seeded access token looks expired
    token = stack.tokens.access_token(stack.realm_id)
    assert token != realm["access_token"]
    stored = stack.store.load(stack.realm_id)
    assert stored is not None
    assert stored.refresh_token not in (realm["refresh_token"], "sandbox-dev-refresh-token")
    assert stack.gateway.find_by_name(stack.realm_id, "no such class anywhere") is None


def test_nothing_stored_and_no_bootstrap_is_disconnected(sandbox: Any) -> None:
    stack = build_stack(sandbox, seed_tokens=False)
    with pytest.raises(QboDisconnected, match="not connected"):
        stack.gateway.read(stack.realm_id, "1")
    assert stack.tokens.refresh_calls == 0


def test_nothing_stored_uses_the_bootstrap_token(sandbox: Any) -> None:
    dev_realm = {"realm_id": "9130350000000000001", "refresh_token": "", "access_token": ""}
    stack = build_stack(
        sandbox,
        realm=dev_realm,
        seed_tokens=False,
        bootstrap_refresh_token="sandbox-dev-refresh-token",
    )
    assert stack.gateway.find_by_name(stack.realm_id, "no such class anywhere") is None
    assert stack.store.load(stack.realm_id) is not None


def test_connect_flow_authorization_url_and_code_exchange(sandbox: Any) -> None:
    client = make_auth_client_factory(
        CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, sandbox.discovery_url
    )()
    url = authorization_url(client, "state-123")
    assert parse_qs(urlsplit(url).query)["state"] == ["state-123"]
    answer = requests.get(url, allow_redirects=False, timeout=5)
    assert answer.status_code in (301, 302, 303, 307)
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query["state"] == ["state-123"]
    realm_id = query["realmId"][0]
    tokens = exchange_code(client, query["code"][0], realm_id)
    assert tokens.realm_id == realm_id
    assert tokens.access_token
    assert tokens.refresh_token
    with pytest.raises(QboDisconnected, match="authorization code"):
        exchange_code(client, query["code"][0], realm_id)  # codes are single-use
