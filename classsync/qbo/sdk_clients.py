"""One python-quickbooks ``QuickBooks`` client per realm, rebuilt only when its access token changes."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from quickbooks import QuickBooks
from requests.adapters import HTTPAdapter

from classsync.qbo.endpoints import is_loopback_url
from classsync.qbo.http_session import LastResponse


@dataclass(frozen=True, slots=True)
class _SessionCredentials:
    """Exactly what ``QuickBooks(auth_client=...)`` reads from its auth client.

    With ``access_token`` set the constructor never calls the token endpoint, so it can neither
    refresh on its own nor rotate a refresh token behind the TokenManager's back (docs/qbo.md,
    "python-quickbooks" and "OAuth tokens"). Using this instead of an intuitlib ``AuthClient``
    also avoids the discovery request that the AuthClient constructor makes, which matters on the
    hot path.
    """

    client_id: str
    environment: str
    access_token: str
    refresh_token: None = None


class QuickbooksClients:
    """Builds and caches the SDK client of each realm; all of them share one connection pool.

    Args:
        api_base_url: the resolved accounting API base (``…/v3``).
        environment: passed to the SDK as the auth client's environment (labels only: the base URL
            is always set explicitly).
        client_id: the Intuit app's client id (only labels the OAuth2 session).
        minor_version: sent on every request (docs/qbo.md, "Minor versions").
        adapter: mounted for http and https on every client (timeouts, pool).
        last_response: its hook is installed on every client's session.
    """

    def __init__(
        self,
        *,
        api_base_url: str,
        environment: str,
        client_id: str,
        minor_version: int,
        adapter: HTTPAdapter,
        last_response: LastResponse,
    ) -> None:
        self._base_url = api_base_url
        self._environment = environment
        self._client_id = client_id
        self._minor_version = minor_version
        self._adapter = adapter
        self._last_response = last_response
        self._loopback = is_loopback_url(api_base_url)
        self._clients: dict[str, tuple[str, QuickBooks]] = {}
        self._lock = threading.Lock()

    def client(self, realm_id: str, access_token: str) -> QuickBooks:
        """The realm's client for this access token (cached until the token changes)."""
        with self._lock:
            cached = self._clients.get(realm_id)
        if cached is not None and cached[0] == access_token:
            return cached[1]
        qb = self._build(realm_id, access_token)
        with self._lock:
            self._clients[realm_id] = (access_token, qb)
        return qb

    def _build(self, realm_id: str, access_token: str) -> QuickBooks:
        credentials = _SessionCredentials(self._client_id, self._environment, access_token)
        qb = QuickBooks(
            auth_client=credentials, company_id=realm_id, minorversion=self._minor_version
        )
        # Both are class attributes read through `api_url` (docs/qbo.md, "python-quickbooks");
        # set per instance, never globally.
        qb.api_url_v3 = self._base_url
        qb.sandbox_api_url_v3 = self._base_url
        qb.session.mount("https://", self._adapter)
        qb.session.mount("http://", self._adapter)
        if self._loopback:
            # Proxy variables and ~/.netrc cannot apply to loopback, and requests re-reads them on
            # every call (measured: about a third of the client's CPU per call). Real QBO keeps
            # them, since a deployment may reach Intuit through an HTTPS proxy.
            qb.session.trust_env = False
        qb.session.hooks["response"].append(self._last_response.hook)
        return qb


__all__ = ["QuickbooksClients"]
