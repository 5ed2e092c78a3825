"""intuit-oauth calls: the shared AuthClient, consent URL, code exchange and one token refresh."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from intuitlib.client import AuthClient
from intuitlib.enums import Scopes

from classsync.domain import QboDisconnected, QboError, QboRetryable, RealmTokens
from classsync.qbo.errors import classify

# Token expiry times are "now + expires_in"; tests pass a clock they move by hand.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (the default clock)."""
    return datetime.now(UTC)


class InvalidGrant(Exception):
    """The token endpoint refused a refresh token (invalid_grant)."""


class _BoundedAuthClient(AuthClient):  # type: ignore[misc]
    """An intuitlib ``AuthClient`` whose HTTP calls carry a timeout.

    intuitlib sends no timeout, not even for the discovery document its constructor fetches
    (docs/qbo.md, "OAuth tokens"). AuthClient *is* a ``requests.Session``; overriding ``request``
    in our own subclass covers discovery, refresh and code exchange without touching the library.
    """

    def __init__(self, *args: Any, timeout_s: float, **kwargs: Any) -> None:
        self._timeout_s = timeout_s  # set first: the base constructor already makes a request
        super().__init__(*args, **kwargs)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        """``requests.Session.request`` with our default timeout."""
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout_s
        return super().request(method, url, *args, **kwargs)


def make_auth_client_factory(
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    environment: str,
    *,
    timeout_s: float = 10.0,
) -> Callable[[], AuthClient]:
    """A thread-safe factory that builds ONE ``AuthClient`` lazily and then returns it.

    ``environment`` is ``sandbox``, ``production`` or a discovery-document URL (see
    ``classsync.qbo.endpoints.intuit_environment``). The constructor fetches the discovery document
    over HTTP, so it is not built at import or start-up, and a failed fetch is not cached (the next
    call tries again).
    """
    lock = threading.Lock()
    built: list[AuthClient] = []

    def factory() -> AuthClient:
        with lock:
            if not built:
                try:
                    client = _BoundedAuthClient(
                        client_id,
                        client_secret,
                        redirect_uri,
                        environment,
                        timeout_s=timeout_s,
                    )
                except Exception as exc:
                    error = classify(exc, sent=False)
                    raise QboRetryable(
                        f"could not load the QBO OAuth discovery document: {error}"
                    ) from exc
                built.append(client)
            return built[0]

    return factory


def _tokens_from_client(
    client: AuthClient, realm_id: str, fallback_refresh: str, now: datetime
) -> RealmTokens:
    """RealmTokens from the attributes intuitlib copied from the token response.

    intuitlib writes the token response onto the AuthClient itself (docs/qbo.md, "OAuth tokens").
    """
    access = getattr(client, "access_token", None)
    if not access:
        raise QboRetryable("the QBO token endpoint answered without an access_token")
    expires_in = getattr(client, "expires_in", None)
    refresh_expires_in = getattr(client, "x_refresh_token_expires_in", None)
    return RealmTokens(
        realm_id=realm_id,
        # QBO may rotate the refresh token on any refresh; keep the newest (docs/qbo.md,
        # "OAuth tokens").
        refresh_token=getattr(client, "refresh_token", None) or fallback_refresh,
        access_token=access,
        access_expires_at=now + timedelta(seconds=float(expires_in)) if expires_in else None,
        refresh_expires_at=(
            now + timedelta(seconds=float(refresh_expires_in)) if refresh_expires_in else None
        ),
    )


def _forget_tokens(client: AuthClient) -> None:
    """Clear the shared client's token attributes so no realm's values linger on it."""
    client.access_token = None
    client.refresh_token = None
    client.expires_in = None
    client.x_refresh_token_expires_in = None


def authorization_url(auth_client: AuthClient, state: str) -> str:
    """The Intuit consent URL for the accounting scope, carrying ``state`` (CSRF token)."""
    return str(auth_client.get_authorization_url([Scopes.ACCOUNTING], state_token=state))


def exchange_code(
    auth_client: AuthClient, code: str, realm_id: str, *, clock: Clock = utc_now
) -> RealmTokens:
    """Exchange an authorization code for the realm's first tokens.

    Raises ``QboDisconnected`` when the code is refused (codes are single-use and short-lived), or
    another ``QboError`` for transport and endpoint failures.
    """
    _forget_tokens(auth_client)
    try:
        auth_client.get_bearer_token(code, realm_id=realm_id)
        return _tokens_from_client(auth_client, realm_id, "", clock())
    except QboError:
        raise
    except Exception as exc:
        error = classify(exc, sent=False)
        if isinstance(error, QboDisconnected):
            raise QboDisconnected(
                "QBO refused the authorization code (invalid_grant); codes are single-use and "
                "expire within minutes: run `classsync connect` again",
                code="invalid_grant",
            ) from exc
        raise error from exc
    finally:
        _forget_tokens(auth_client)


def refresh_tokens(
    auth_client: AuthClient, realm_id: str, refresh_token: str, now: Clock
) -> RealmTokens:
    """One call to the token endpoint with ``refresh_token``; the caller serialises calls.

    intuitlib's ``refresh()`` writes the response onto the shared client, so only one refresh may
    run at a time on it. Raises ``InvalidGrant`` when the refresh token is refused, another
    ``QboError`` for transport and endpoint failures.
    """
    _forget_tokens(auth_client)
    try:
        auth_client.refresh(refresh_token=refresh_token)
        return _tokens_from_client(auth_client, realm_id, refresh_token, now())
    except QboError:
        raise
    except Exception as exc:
        error = classify(exc, sent=False)
        if isinstance(error, QboDisconnected):
            raise InvalidGrant from None
        raise error from exc
    finally:
        _forget_tokens(auth_client)


def revoke_token(auth_client: AuthClient, token: str) -> None:
    """End the connection ``token`` (refresh or access) belongs to, at Intuit's revoke endpoint.

    Revoking a refresh token disconnects the app from the company: every token of that
    connection stops working (docs/qbo.md, "OAuth tokens"). Raises a ``QboError`` on failure.
    """
    _forget_tokens(auth_client)
    try:
        auth_client.revoke(token=token)
    except Exception as exc:
        raise classify(exc, sent=True) from exc
    finally:
        _forget_tokens(auth_client)


__all__ = [
    "Clock",
    "InvalidGrant",
    "authorization_url",
    "exchange_code",
    "make_auth_client_factory",
    "refresh_tokens",
    "revoke_token",
    "utc_now",
]
