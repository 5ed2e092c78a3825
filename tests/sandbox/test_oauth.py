"""OAuth 2.0 via intuit-oauth over real HTTP: discovery, grants, expiry, rotation, revocation."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from intuitlib.enums import Scopes
from intuitlib.exceptions import AuthClientError
from quickbooks.exceptions import AuthorizationException
from quickbooks.objects.trackingclass import Class

from classsync.sandbox import RunningSandbox
from tests.fixtures.sandbox import (
    DEV_REALM_ID,
    DEV_REFRESH_TOKEN,
    make_auth_client,
    make_qbo_client,
)

pytestmark = pytest.mark.integration


def _invalid_grant(error: AuthClientError) -> bool:
    return error.status_code == 400 and b"invalid_grant" in error.content


def test_discovery_document_is_accepted_by_intuitlib(sandbox: RunningSandbox) -> None:
    auth = make_auth_client(sandbox)
    assert auth.token_endpoint == sandbox.base_url + "/oauth2/v1/tokens/bearer"
    assert auth.revoke_endpoint.startswith(sandbox.base_url)
    assert auth.issuer_uri == sandbox.base_url


def test_connect_flow_end_to_end_and_code_works_once(sandbox: RunningSandbox) -> None:
    auth = make_auth_client(sandbox)
    url = auth.get_authorization_url([Scopes.ACCOUNTING], state_token="xyz")
    redirect = requests.get(url, allow_redirects=False, timeout=5)
    assert redirect.status_code == 302
    params = parse_qs(urlsplit(redirect.headers["Location"]).query)
    assert params["state"] == ["xyz"]
    assert params["realmId"] == [DEV_REALM_ID]

    auth.get_bearer_token(params["code"][0], realm_id=params["realmId"][0])
    assert auth.access_token
    assert auth.refresh_token
    assert auth.expires_in == 3600
    qb = make_qbo_client(
        sandbox,
        {
            "realm_id": DEV_REALM_ID,
            "access_token": auth.access_token,
            "refresh_token": auth.refresh_token,
        },
    )
    assert isinstance(Class.all(qb=qb), list)

    with pytest.raises(AuthClientError) as caught:
        make_auth_client(sandbox).get_bearer_token(params["code"][0])
    assert _invalid_grant(caught.value)


def test_refresh_rotates_and_superseded_token_gets_invalid_grant(
    sandbox: RunningSandbox, sandbox_realm: dict[str, Any]
) -> None:
    auth = make_auth_client(sandbox)
    first = sandbox_realm["refresh_token"]
    auth.refresh(refresh_token=first)
    second = auth.refresh_token
    assert second != first
    auth.refresh(refresh_token=second)  # the newest one works
    with pytest.raises(AuthClientError) as caught:
        auth.refresh(refresh_token=first)
    assert _invalid_grant(caught.value)
    assert caught.value.content == b'{"error":"invalid_grant"}'


def test_superseded_token_works_within_configured_grace(
    sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    running = sandbox_factory(refresh_token_grace=0.5)
    realm = running.admin.create_realm()
    auth = make_auth_client(running)
    auth.refresh(refresh_token=realm["refresh_token"])
    auth.refresh(refresh_token=realm["refresh_token"])  # still inside the grace
    time.sleep(0.7)
    with pytest.raises(AuthClientError) as caught:
        auth.refresh(refresh_token=realm["refresh_token"])
    assert _invalid_grant(caught.value)


def test_standing_dev_token_keeps_working_and_quickbooks_rotates_it(
    sandbox: RunningSandbox,
) -> None:
    for _ in range(2):
        qb = make_qbo_client(
            sandbox,
            {"realm_id": DEV_REALM_ID, "access_token": None, "refresh_token": DEV_REFRESH_TOKEN},
            use_access_token=False,
        )
        # QuickBooks() refreshed on construction (docs/qbo.md, "python-quickbooks"): a new token.
        assert qb.refresh_token not in {None, DEV_REFRESH_TOKEN}
        assert isinstance(Class.all(qb=qb), list)


def test_expired_access_token_gets_401_then_refresh_works(
    sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    running = sandbox_factory(access_token_ttl=1)
    realm = running.admin.create_realm()
    qb = make_qbo_client(running, realm)
    assert Class.all(qb=qb) == []
    time.sleep(1.2)
    with pytest.raises(AuthorizationException) as caught:
        Class.all(qb=qb)
    assert caught.value.error_code == 401
    assert '"code":"3200"' in caught.value.detail
    assert "Token expired" in caught.value.detail

    qb.auth_client.refresh(refresh_token=realm["refresh_token"])
    fresh = make_qbo_client(
        running,
        {
            "realm_id": realm["realm_id"],
            "access_token": qb.auth_client.access_token,
            "refresh_token": qb.auth_client.refresh_token,
        },
    )
    assert Class.all(qb=fresh) == []


def test_admin_can_expire_access_tokens(sandbox: RunningSandbox, qbo: Any) -> None:
    assert sandbox.admin.expire_access_tokens(qbo.company_id) >= 1
    with pytest.raises(AuthorizationException):
        Class.all(qb=qbo)


def test_revocation_ends_the_connection(sandbox: RunningSandbox, sandbox_realm: dict) -> None:
    qb = make_qbo_client(sandbox, sandbox_realm)
    assert qb.auth_client.revoke(token=sandbox_realm["refresh_token"]) is True
    with pytest.raises(AuthorizationException):
        Class.all(qb=qb)
    with pytest.raises(AuthClientError) as caught:
        make_auth_client(sandbox).refresh(refresh_token=sandbox_realm["refresh_token"])
    assert _invalid_grant(caught.value)


def test_admin_revoke_tokens_kills_refresh_and_access(sandbox: RunningSandbox) -> None:
    realm = sandbox.admin.create_realm()
    qb = make_qbo_client(sandbox, realm)
    assert sandbox.admin.revoke_tokens(realm["realm_id"]) >= 2
    with pytest.raises(AuthorizationException):
        Class.all(qb=qb)
    with pytest.raises(AuthClientError) as caught:
        make_auth_client(sandbox).refresh(refresh_token=realm["refresh_token"])
    assert _invalid_grant(caught.value)


def test_wrong_client_secret_is_invalid_client(sandbox: RunningSandbox) -> None:
    auth = make_auth_client(sandbox)
    auth.client_secret = "not-the-secret"
    with pytest.raises(AuthClientError) as caught:
        auth.refresh(refresh_token=DEV_REFRESH_TOKEN)
    assert caught.value.status_code == 401
    assert b"invalid_client" in caught.value.content


def test_unknown_refresh_token_is_invalid_grant(sandbox: RunningSandbox) -> None:
    with pytest.raises(AuthClientError) as caught:
        make_auth_client(sandbox).refresh(refresh_token="never-issued")
    assert _invalid_grant(caught.value)


def test_token_of_another_realm_is_refused(sandbox: RunningSandbox) -> None:
    one, other = sandbox.admin.create_realm(), sandbox.admin.create_realm()
    response = requests.get(
        f"{sandbox.api_base_url}/company/{other['realm_id']}/query",
        params={"query": "select * from Class", "minorversion": "75"},
        headers={"Authorization": f"Bearer {one['access_token']}", "Accept": "application/json"},
        timeout=5,
    )
    assert response.status_code == 403
    assert response.json()["fault"]["error"][0]["code"] == "3100"
