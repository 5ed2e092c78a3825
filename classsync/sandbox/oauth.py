"""OAuth 2.0 endpoints: discovery document, authorize, token, revoke, userinfo, keys."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode, urlsplit, urlunsplit

from aiohttp import web

from classsync.sandbox.pipeline import (
    STATE,
    DroppedError,
    in_outage,
    json_response,
    outage_response,
)
from classsync.sandbox.state import SandboxState
from classsync.sandbox.tokens import AccessDeniedError, InvalidGrantError

DISCOVERY_PATH = "/.well-known/openid_configuration"
AUTHORIZE_PATH = "/connect/oauth2"
TOKEN_PATH = "/oauth2/v1/tokens/bearer"
REVOKE_PATH = "/oauth2/v1/tokens/revoke"
USERINFO_PATH = "/v1/openid_connect/userinfo"
JWKS_PATH = "/oauth2/v1/keys"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _counted(name: str, handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        status: int | str = "dropped"
        try:
            response = await handler(request)
            status = response.status
            return response
        except DroppedError:
            return web.Response()  # never sent: the transport is already closed
        finally:
            state.counters.request(name, status, None)

    return wrapped


def _base_url(state: SandboxState, request: web.Request) -> str:
    return state.config.public_url.rstrip("/") or f"{request.scheme}://{request.host}"


async def discovery(request: web.Request) -> web.StreamResponse:
    """The document intuitlib reads on AuthClient(environment=<this URL>) (docs/qbo.md)."""
    base = _base_url(request.app[STATE], request)
    return json_response(
        {
            "issuer": base,
            "authorization_endpoint": base + AUTHORIZE_PATH,
            "token_endpoint": base + TOKEN_PATH,
            "userinfo_endpoint": base + USERINFO_PATH,
            "revocation_endpoint": base + REVOKE_PATH,
            "jwks_uri": base + JWKS_PATH,
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile", "com.intuit.quickbooks.accounting"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "claims_supported": ["sub", "iss", "realmid"],
        }
    )


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(item for item in (parts.query, urlencode(params)) if item)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


async def authorize(request: web.Request) -> web.StreamResponse:
    """Consent screen stand-in: redirect straight back with a code for the dev (or asked) realm."""
    state = request.app[STATE]
    params = request.query
    if params.get("client_id") != state.config.client_id:
        return web.Response(status=400, text="unknown client_id")
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri or params.get("response_type", "code") != "code":
        return web.Response(status=400, text="redirect_uri and response_type=code are required")
    # Not part of Intuit's API: ?realmId=... picks (and creates) the company to connect.
    realm_id = params.get("realmId") or params.get("realm_id") or state.config.dev_realm_id
    state.realm(realm_id)
    code = state.tokens.new_code(realm_id, state.config)
    answer = {"code": code, "realmId": realm_id}
    if "state" in params:
        answer["state"] = params["state"]
    return web.Response(status=302, headers={"Location": _with_query(redirect_uri, answer)})


def _client_ok(state: SandboxState, request: web.Request) -> bool:
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        client_id, _, secret = base64.b64decode(encoded.strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    config = state.config
    return secrets.compare_digest(client_id, config.client_id) and secrets.compare_digest(
        secret, config.client_secret
    )


def _oauth_error(error: str, status: int, description: str = "") -> web.Response:
    body = {"error": error}
    if description:
        body["error_description"] = description
    return json_response(body, status)


async def token(request: web.Request) -> web.StreamResponse:
    """authorization_code and refresh_token grants with Basic client authentication."""
    state = request.app[STATE]
    if in_outage(state, None):
        return outage_response(state, request)
    if not _client_ok(state, request):
        return _oauth_error("invalid_client", 401)
    form = await request.post()
    grant_type = str(form.get("grant_type", ""))
    state.counters.token_grants[grant_type or "(none)"] += 1
    try:
        if grant_type == "refresh_token":
            realm_id, body = state.tokens.refresh(str(form.get("refresh_token", "")), state.config)
            state.counters.realm(realm_id, "token_refreshes")
        elif grant_type == "authorization_code":
            realm_id, body = state.tokens.exchange_code(str(form.get("code", "")), state.config)
        else:
            return _oauth_error("unsupported_grant_type", 400)
    except InvalidGrantError:
        # Intuit sometimes sends just {"error": "invalid_grant"} (docs/qbo.md, "OAuth tokens").
        return _oauth_error("invalid_grant", 400)
    state.mark_dirty()
    return json_response(body)


async def revoke(request: web.Request) -> web.StreamResponse:
    """Revoke the connection a token belongs to; intuitlib posts JSON {"token": ...}."""
    state = request.app[STATE]
    if in_outage(state, None):
        return outage_response(state, request)
    if not _client_ok(state, request):
        return _oauth_error("invalid_client", 401)
    raw = await request.read()
    try:
        value = str(json.loads(raw or b"{}").get("token", ""))
    except (json.JSONDecodeError, AttributeError):
        value = str((await request.post()).get("token", ""))
    state.tokens.revoke(value)  # RFC 7009: unknown tokens are not an error
    state.mark_dirty()
    return web.Response(status=200)


async def userinfo(request: web.Request) -> web.StreamResponse:
    """Minimal OpenID userinfo for a valid bearer token."""
    state = request.app[STATE]
    _, _, value = request.headers.get("Authorization", "").partition(" ")
    try:
        realm_id = state.tokens.check_access(value.strip())
    except AccessDeniedError:
        return _oauth_error("invalid_token", 401)
    return json_response(
        {"sub": f"sandbox-user-{realm_id}", "email": "sandbox@example.invalid", "realmid": realm_id}
    )


async def keys(request: web.Request) -> web.StreamResponse:
    """JWKS: the sandbox signs no id_tokens, so the key set is empty."""
    return json_response({"keys": []})


def add_routes(app: web.Application) -> None:
    """Register the OAuth endpoints on ``app``."""
    for path in (DISCOVERY_PATH, DISCOVERY_PATH + "/"):
        app.router.add_get(path, _counted("oauth.discovery", discovery))
    app.router.add_get(AUTHORIZE_PATH, _counted("oauth.authorize", authorize))
    app.router.add_post(TOKEN_PATH, _counted("oauth.token", token))
    app.router.add_post(REVOKE_PATH, _counted("oauth.revoke", revoke))
    app.router.add_get(USERINFO_PATH, _counted("oauth.userinfo", userinfo))
    app.router.add_get(JWKS_PATH, _counted("oauth.keys", keys))
