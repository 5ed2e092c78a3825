"""`classsync connect`: the OAuth authorize → redirect → code → tokens flow for one realm."""

from __future__ import annotations

import http.server
import secrets
import threading
import webbrowser
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from classsync.bootstrap import auth_client_factory, build_storage
from classsync.config import Settings
from classsync.domain import RealmTokens
from classsync.qbo.endpoints import allow_plain_http_if_loopback, is_loopback_url
from classsync.qbo.oauth import authorization_url, exchange_code


class _Callback(http.server.BaseHTTPRequestHandler):
    """Receives the redirect and hands its query to the waiting command."""

    result: dict[str, str]
    done: threading.Event

    def do_GET(self) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        type(self).result.update(query)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        self.wfile.write(b"classsync: you can close this window and return to the terminal.\n")
        type(self).done.set()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - overridden name
        return  # the query holds the authorization code: never print it


def run_connect(
    settings: Settings, *, open_browser: bool, timeout: float, realm_id: str | None = None
) -> str:
    """Authorize the app, exchange the code and store the realm's tokens; returns the realm id.

    The redirect lands on a one-shot local HTTP listener at QBO_REDIRECT_URI. With the local
    sandbox the authorize endpoint redirects straight back, so the command follows it itself.
    ``realm_id`` (--realm) is the company expected: another one picked on Intuit's page is
    refused. Without it, the company picked is connected, whichever it is.
    """
    wanted = realm_id
    allow_plain_http_if_loopback(settings.api_base_url, settings.intuit_environment)
    redirect = urlsplit(settings.qbo_redirect_uri)
    # A fresh subclass per run: its class attributes carry this run's result and event.
    handler: type[_Callback] = type(
        "Callback", (_Callback,), {"result": {}, "done": threading.Event()}
    )
    listener = http.server.HTTPServer(
        (redirect.hostname or "127.0.0.1", redirect.port or 80), handler
    )
    thread = threading.Thread(target=listener.serve_forever, daemon=True)
    thread.start()
    try:
        client = auth_client_factory(settings)()
        state = secrets.token_urlsafe(16)
        url = authorization_url(client, state)
        if is_loopback_url(url):
            # The local emulator's consent page is automatic; `realmId` plays the person who
            # picks the company on Intuit's page.
            requests.get(
                url,
                params={"realmId": wanted or settings.qbo_realm_id},
                timeout=settings.qbo_timeout_seconds,
                allow_redirects=True,
            )
        else:
            print(f"Open this URL to connect QuickBooks:\n  {url}", flush=True)
            if open_browser:
                webbrowser.open(url)
        if not handler.done.wait(timeout):
            msg = f"no redirect reached {settings.qbo_redirect_uri} within {timeout:.0f} s"
            raise TimeoutError(msg)
        realm_id, tokens = _exchange(client, handler.result, state, wanted)
    finally:
        listener.shutdown()
        listener.server_close()
    return _store(settings, realm_id, tokens)


def run_connect_paste(
    settings: Settings, *, read_line: Callable[[], str], realm_id: str | None = None
) -> str:
    """Like run_connect, for a machine with no browser and no reachable redirect listener.

    The person opens the printed consent URL anywhere, approves, and pastes the address the
    browser was redirected to (it need not have loaded: only its query is read).
    """
    allow_plain_http_if_loopback(settings.api_base_url, settings.intuit_environment)
    client = auth_client_factory(settings)()
    state = secrets.token_urlsafe(16)
    url = authorization_url(client, state)
    print(
        "Open this URL in any browser and approve the connection:\n"
        f"  {url}\n"
        "Then paste the full address the browser was sent to (it starts with "
        f"{settings.qbo_redirect_uri}) and press Enter:",
        flush=True,
    )
    pasted = read_line().strip()
    query = urlsplit(pasted).query if "://" in pasted else pasted.lstrip("?")
    result = {k: v[0] for k, v in parse_qs(query).items()}
    if not result:
        msg = "nothing pasted: expected the redirected URL with ?code=...&state=...&realmId=..."
        raise RuntimeError(msg)
    realm_id, tokens = _exchange(client, result, state, realm_id)
    return _store(settings, realm_id, tokens)


def retry_hint(settings: Settings) -> str:
    """What to do after a failed connect."""
    if settings.uses_dev_sandbox:
        return (
            "QBO_ENVIRONMENT is the local emulator, which needs no connect (`classsync serve` "
            "starts it with a development token); `classsync sandbox` runs it on its own"
        )
    return f"run it again (`--paste` when no browser can reach {settings.qbo_redirect_uri})"


def _exchange(
    client: Any, result: dict[str, str], state: str, wanted: str | None
) -> tuple[str, RealmTokens]:
    """Check the redirect's state, outcome and company, then trade its code for the tokens.

    Without ``wanted`` (no --realm), whichever company the person picked is connected.
    """
    if result.get("state") != state:
        msg = "the redirect's state does not match (possible CSRF)"
        raise RuntimeError(msg)
    if "error" in result:
        msg = f"authorization refused: {result['error']}"
        raise RuntimeError(msg)
    if "code" not in result:
        msg = "the redirect carries no authorization code"
        raise RuntimeError(msg)
    realm_id = result.get("realmId") or wanted
    if not realm_id:
        msg = "the redirect names no company (realmId); nothing was stored"
        raise RuntimeError(msg)
    if wanted is not None and realm_id != wanted:
        # Tokens are per company: storing them under another realm id would sync nothing.
        msg = (
            f"Intuit connected company (realm) {realm_id}, not {wanted}; nothing was stored: run "
            f"`classsync connect --realm {realm_id}` to connect that company"
        )
        raise RuntimeError(msg)
    return realm_id, exchange_code(client, result["code"], realm_id)


def _store(settings: Settings, realm_id: str, tokens: RealmTokens) -> str:
    storage = build_storage(settings)
    try:
        with storage.token_store.locked(realm_id) as realm:
            realm.save(tokens)
    finally:
        storage.engine.dispose()
    return realm_id
