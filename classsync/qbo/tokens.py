"""OAuth tokens per QBO realm: refresh before expiry, one refresh per 401 burst, rotation saved."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog
from intuitlib.client import AuthClient
from intuitlib.enums import Scopes

from classsync.domain import QboDisconnected, QboError, QboRetryable, RealmTokens
from classsync.qbo.errors import classify

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (the default clock)."""
    return datetime.now(UTC)


# ---------------------------------------------------------------------------------------------
# Storage protocols (the SQL implementation lives in classsync/store/).


class LockedRealm(Protocol):
    """One realm's token row, held under a cross-process lock during ``TokenStore.locked``."""

    tokens: RealmTokens | None  # freshly re-read under the lock

    def save(self, tokens: RealmTokens) -> None:
        """Write new tokens in the locked transaction (committed when the lock block exits)."""
        ...

    def mark_disconnected(self, message: str) -> None:
        """Record that a person must reconnect the realm, and why."""
        ...


class TokenStore(Protocol):
    """Where realm tokens live between processes and restarts."""

    def load(self, realm_id: str) -> RealmTokens | None:
        """The stored tokens of a realm, without locking."""
        ...

    def locked(self, realm_id: str) -> AbstractContextManager[LockedRealm]:
        """Hold a cross-process lock on the realm until exit; commits on (normal) exit."""
        ...


class _MemoryLockedRealm:
    """Staged writes of one ``InMemoryTokenStore.locked`` block."""

    def __init__(self, tokens: RealmTokens | None) -> None:
        self.tokens = tokens
        self.saved: RealmTokens | None = None
        self.disconnected: str | None = None

    def save(self, tokens: RealmTokens) -> None:
        """Stage new tokens (they replace any disconnection note)."""
        self.saved = tokens
        self.tokens = tokens
        self.disconnected = None

    def mark_disconnected(self, message: str) -> None:
        """Stage a disconnection note."""
        self.disconnected = message


class InMemoryTokenStore:
    """A ``TokenStore`` in process memory, for tests and tooling without a database.

    Behaves like the SQL store: writes made inside ``locked()`` become visible only when the block
    exits normally (commit); an exception discards them (rollback). ``on_commit`` is called with the
    realm id and the committed tokens, after they are visible, so tests can observe ordering.
    """

    def __init__(
        self,
        tokens: Iterable[RealmTokens] = (),
        *,
        on_commit: Callable[[str, RealmTokens], None] | None = None,
    ) -> None:
        self._data_lock = threading.Lock()
        self._realm_locks: dict[str, threading.Lock] = {}
        self._tokens: dict[str, RealmTokens] = {t.realm_id: t for t in tokens}
        self._disconnected: dict[str, str] = {}
        self._on_commit = on_commit
        self.saves = 0

    def put(self, tokens: RealmTokens) -> None:
        """Store tokens directly (seeding, or what a reconnect would write)."""
        with self._data_lock:
            self._tokens[tokens.realm_id] = tokens
            self._disconnected.pop(tokens.realm_id, None)

    def load(self, realm_id: str) -> RealmTokens | None:
        """The stored tokens of a realm."""
        with self._data_lock:
            return self._tokens.get(realm_id)

    def disconnected_message(self, realm_id: str) -> str | None:
        """Why the realm was marked disconnected, or None while it is connected."""
        with self._data_lock:
            return self._disconnected.get(realm_id)

    @contextmanager
    def locked(self, realm_id: str) -> Iterator[LockedRealm]:
        """Lock the realm, yield its row, and commit staged writes on normal exit."""
        with self._data_lock:
            lock = self._realm_locks.setdefault(realm_id, threading.Lock())
        with lock:
            staged = _MemoryLockedRealm(self.load(realm_id))
            yield staged
            with self._data_lock:
                if staged.saved is not None:
                    self._tokens[realm_id] = staged.saved
                    self._disconnected.pop(realm_id, None)
                    self.saves += 1
                if staged.disconnected is not None:
                    self._disconnected[realm_id] = staged.disconnected
            if staged.saved is not None and self._on_commit is not None:
                self._on_commit(realm_id, staged.saved)


# ---------------------------------------------------------------------------------------------
# The intuitlib AuthClient, built once per process.


class _BoundedAuthClient(AuthClient):  # type: ignore[misc]
    """An intuitlib ``AuthClient`` whose HTTP calls carry a timeout.

    intuitlib sends no timeout, not even for the discovery document its constructor fetches
    (qbo-reference §5.3). AuthClient *is* a ``requests.Session``; overriding ``request`` in our own
    subclass covers discovery, refresh and code exchange without touching the library.
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

    ``environment`` is ``sandbox``, ``production`` or a discovery-document URL (qbo-reference §5.3).
    The constructor fetches the discovery document over HTTP, so it is not built at import or
    start-up, and a failed fetch is not cached (the next call tries again).
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
    """Build RealmTokens from the attributes intuitlib copied from the token response (§5.3)."""
    access = getattr(client, "access_token", None)
    if not access:
        raise QboRetryable("the QBO token endpoint answered without an access_token")
    expires_in = getattr(client, "expires_in", None)
    refresh_expires_in = getattr(client, "x_refresh_token_expires_in", None)
    return RealmTokens(
        realm_id=realm_id,
        # QBO may rotate the refresh token on any refresh; keep the newest (§5.1).
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


# ---------------------------------------------------------------------------------------------
# Connect flow helpers (used by `classsync connect`).


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


# ---------------------------------------------------------------------------------------------
# The token manager.


class _InvalidGrantError(Exception):
    """The token endpoint refused a refresh token."""


class TokenManager:
    """Hands out a valid access token per realm and refreshes it safely.

    - ``access_token`` refreshes when the token is missing or expires within ``refresh_margin_s``.
    - ``refresh_after_401`` refreshes only if the stored token is still the rejected one, so a burst
      of concurrent 401s causes one refresh.
    - A refresh happens under ``store.locked(realm)`` (cross-process) and a per-realm thread lock
      (so threads queue here instead of on the database). The new tokens are committed before the
      new access token is returned: QBO may rotate the refresh token, and an unsaved rotation is
      the classic invalid_grant trap (qbo-reference §5.1, §5.4, §8 items 1 and 5).
    - On invalid_grant the realm is marked disconnected and ``QboDisconnected`` is raised.
    """

    def __init__(
        self,
        store: TokenStore,
        auth_client_factory: Callable[[], AuthClient],
        *,
        bootstrap_refresh_token: str | None,
        refresh_margin_s: float = 300.0,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._auth_client_factory = auth_client_factory
        self._bootstrap = bootstrap_refresh_token or None
        self._margin = timedelta(seconds=refresh_margin_s)
        self._clock = clock
        self._meta_lock = threading.Lock()
        self._realm_locks: dict[str, threading.Lock] = {}
        # intuitlib's refresh() writes the response onto the AuthClient itself (§5.3), so the one
        # shared client is used by one refresh at a time. Refreshes are rare (hourly per realm).
        self._auth_lock = threading.Lock()
        self._cache: dict[str, RealmTokens] = {}
        self._lifetimes: dict[str, timedelta] = {}
        # Refresh tokens that got invalid_grant, per realm, so a disconnected realm does not hit
        # the token endpoint on every call; a reconnect stores a different token and clears this.
        self._dead: dict[str, tuple[frozenset[str], str]] = {}
        self.refresh_calls = 0

    # -- public API ---------------------------------------------------------------------------

    def access_token(self, realm_id: str) -> str:
        """A usable access token for the realm, refreshing first when needed."""
        cached = self._cache.get(realm_id)
        if cached is not None and self._usable(realm_id, cached):
            return str(cached.access_token)
        with self._realm_lock(realm_id):
            cached = self._cache.get(realm_id)
            if cached is not None and self._usable(realm_id, cached):
                return str(cached.access_token)
            stored = self._store.load(realm_id)
            if stored is not None and self._usable(realm_id, stored):
                self._cache[realm_id] = stored
                return str(stored.access_token)
            return str(self._refresh(realm_id, rejected=None, reason="expiring").access_token)

    def refresh_after_401(self, realm_id: str, rejected_access_token: str) -> str:
        """A new access token after QBO rejected ``rejected_access_token`` with HTTP 401."""
        with self._realm_lock(realm_id):
            cached = self._cache.get(realm_id)
            if (
                cached is not None
                and cached.access_token != rejected_access_token
                and self._usable(realm_id, cached)
            ):
                return str(cached.access_token)
            self._cache.pop(realm_id, None)
            return str(
                self._refresh(
                    realm_id, rejected=rejected_access_token, reason="http_401"
                ).access_token
            )

    # -- internals ----------------------------------------------------------------------------

    def _realm_lock(self, realm_id: str) -> threading.Lock:
        with self._meta_lock:
            return self._realm_locks.setdefault(realm_id, threading.Lock())

    def _usable(self, realm_id: str, tokens: RealmTokens) -> bool:
        if not tokens.access_token:
            return False
        if tokens.access_expires_at is None:
            return True  # unknown expiry: use it; a 401 will tell us
        margin = self._margin
        lifetime = self._lifetimes.get(realm_id)
        if lifetime is not None:
            # Short-lived tokens (the sandbox can issue 1 s tokens) would otherwise always look
            # "expiring" and be refreshed on every call.
            margin = min(margin, lifetime / 2)
        return tokens.access_expires_at - margin > self._clock()

    def _refresh(self, realm_id: str, *, rejected: str | None, reason: str) -> RealmTokens:
        """Refresh under the store lock; the lock block commits before the tokens are returned."""
        outcome: RealmTokens | QboError
        with self._store.locked(realm_id) as locked:
            current = locked.tokens
            if (
                current is not None
                and current.access_token != rejected
                and self._usable(realm_id, current)
            ):
                # Another thread or replica refreshed while we waited for the lock.
                outcome = current
            else:
                outcome = self._obtain(realm_id, current, locked, reason=reason)
        # Raised only after the lock block exits, so a disconnection note is committed too.
        if isinstance(outcome, QboError):
            raise outcome
        self._cache[realm_id] = outcome
        return outcome

    def _obtain(
        self, realm_id: str, current: RealmTokens | None, locked: LockedRealm, *, reason: str
    ) -> RealmTokens | QboError:
        candidates: list[str] = []
        if current is not None and current.refresh_token:
            candidates.append(current.refresh_token)
        # Dev convenience: a configured bootstrap token (the sandbox's standing token) is tried
        # once when the stored one is refused.
        if self._bootstrap and self._bootstrap not in candidates:
            candidates.append(self._bootstrap)
        reconnect = f"reconnect it with `classsync connect --realm {realm_id}`"
        if not candidates:
            message = (
                f"QBO realm {realm_id} is not connected (no refresh token stored); {reconnect}"
            )
            locked.mark_disconnected(message)
            return QboDisconnected(message)
        dead = self._dead.get(realm_id)
        if dead is not None and set(candidates) <= dead[0]:
            return QboDisconnected(dead[1], code="invalid_grant")
        for refresh_token in candidates:
            try:
                tokens = self._call_refresh(realm_id, refresh_token)
            except _InvalidGrantError:
                continue
            except QboError as error:
                return error
            locked.save(tokens)
            self._dead.pop(realm_id, None)
            if tokens.access_expires_at is not None:
                self._lifetimes[realm_id] = tokens.access_expires_at - self._clock()
            log.info(
                "qbo_token_refreshed",
                realm_id=realm_id,
                reason=reason,
                rotated=tokens.refresh_token != refresh_token,
                used_bootstrap=refresh_token == self._bootstrap
                and (current is None or current.refresh_token != refresh_token),
            )
            return tokens
        message = (
            f"QBO refused the refresh token of realm {realm_id} (invalid_grant): access was "
            f"revoked or the token expired; {reconnect}"
        )
        locked.mark_disconnected(message)
        self._dead[realm_id] = (frozenset(candidates), message)
        log.warning("qbo_realm_disconnected", realm_id=realm_id, reason=reason)
        return QboDisconnected(message, code="invalid_grant")

    def _call_refresh(self, realm_id: str, refresh_token: str) -> RealmTokens:
        client = self._auth_client_factory()
        with self._auth_lock:
            _forget_tokens(client)
            try:
                client.refresh(refresh_token=refresh_token)
                self.refresh_calls += 1
                return _tokens_from_client(client, realm_id, refresh_token, self._clock())
            except QboError:
                raise
            except Exception as exc:
                self.refresh_calls += 1
                error = classify(exc, sent=False)
                if isinstance(error, QboDisconnected):
                    raise _InvalidGrantError from None
                raise error from exc
            finally:
                _forget_tokens(client)


__all__ = [
    "InMemoryTokenStore",
    "LockedRealm",
    "TokenManager",
    "TokenStore",
    "authorization_url",
    "exchange_code",
    "make_auth_client_factory",
    "utc_now",
]
