"""TokenManager: a valid access token per realm; one refresh at a time, rotations saved first."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import structlog
from intuitlib.client import AuthClient

from classsync.domain import QboDisconnected, QboError, RealmTokens
from classsync.qbo.oauth import Clock, InvalidGrant, refresh_tokens, utc_now
from classsync.qbo.token_storage import LockedRealm, TokenStore

log = structlog.get_logger(__name__)


class TokenManager:
    """Hands out a valid access token per realm and refreshes it safely.

    - ``access_token`` refreshes when the token is missing or expires within ``refresh_margin_s``.
    - ``refresh_after_401`` refreshes only if the stored token is still the rejected one, so a burst
      of concurrent 401s causes one refresh.
    - A refresh happens under ``store.locked(realm)`` (cross-process) and a per-realm thread lock
      (so threads queue here instead of on the database). The new tokens are committed before the
      new access token is returned: QBO may rotate the refresh token, and an unsaved rotation ends
      in invalid_grant (docs/qbo.md, "OAuth tokens").
    - On invalid_grant the realm is marked disconnected and ``QboDisconnected`` is raised.
    """

    def __init__(
        self,
        store: TokenStore,
        auth_client_factory: Callable[[], AuthClient],
        *,
        bootstrap_refresh_token: str | None,
        bootstrap_realm_id: str | None = None,
        refresh_margin_s: float = 300.0,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._auth_client_factory = auth_client_factory
        self._bootstrap = bootstrap_refresh_token or None
        # The bootstrap token belongs to one company (QBO_REALM_ID); None: offered to any realm.
        self._bootstrap_realm = bootstrap_realm_id
        self._margin = timedelta(seconds=refresh_margin_s)
        self._clock = clock
        self._meta_lock = threading.Lock()
        self._realm_locks: dict[str, threading.Lock] = {}
        # intuitlib's refresh() writes the response onto the AuthClient itself, so the one shared
        # client is used by one refresh at a time. Refreshes are rare (hourly per realm).
        self._auth_lock = threading.Lock()
        self._cache: dict[str, RealmTokens] = {}
        self._lifetimes: dict[str, timedelta] = {}
        # Refresh tokens that got invalid_grant, per realm, so a disconnected realm does not hit
        # the token endpoint on every call; a reconnect stores a different token and clears this.
        self._dead: dict[str, tuple[frozenset[str], str]] = {}
        # Calls made to the token endpoint (tests count them to prove "one refresh per burst").
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

    def _candidates(self, realm_id: str, current: RealmTokens | None) -> list[str]:
        """Refresh tokens to try, stored one first."""
        candidates: list[str] = []
        if current is not None and current.refresh_token:
            candidates.append(current.refresh_token)
        # Dev convenience: a configured bootstrap token (the sandbox's standing token) is tried
        # once when the stored one is refused.
        bootstrap_applies = self._bootstrap_realm in (None, realm_id)
        if self._bootstrap and bootstrap_applies and self._bootstrap not in candidates:
            candidates.append(self._bootstrap)
        return candidates

    def _obtain(
        self, realm_id: str, current: RealmTokens | None, locked: LockedRealm, *, reason: str
    ) -> RealmTokens | QboError:
        """New tokens saved in ``locked``, or the error to raise once the lock block has exited."""
        candidates = self._candidates(realm_id, current)
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
            except InvalidGrant:
                continue
            except QboError as error:
                return error
            self._saved(realm_id, tokens, locked, current, refresh_token, reason=reason)
            return tokens
        message = (
            f"QBO refused the refresh token of realm {realm_id} (invalid_grant): access was "
            f"revoked or the token expired; {reconnect}"
        )
        locked.mark_disconnected(message)
        self._dead[realm_id] = (frozenset(candidates), message)
        log.warning("qbo_realm_disconnected", realm_id=realm_id, reason=reason)
        return QboDisconnected(message, code="invalid_grant")

    def _saved(
        self,
        realm_id: str,
        tokens: RealmTokens,
        locked: LockedRealm,
        current: RealmTokens | None,
        used: str,
        *,
        reason: str,
    ) -> None:
        """Stage the new tokens in the locked row and remember what the refresh taught us."""
        locked.save(tokens)
        self._dead.pop(realm_id, None)
        if tokens.access_expires_at is not None:
            self._lifetimes[realm_id] = tokens.access_expires_at - self._clock()
        log.info(
            "qbo_token_refreshed",
            realm_id=realm_id,
            reason=reason,
            rotated=tokens.refresh_token != used,
            used_bootstrap=used == self._bootstrap
            and (current is None or current.refresh_token != used),
        )

    def _call_refresh(self, realm_id: str, refresh_token: str) -> RealmTokens:
        client = self._auth_client_factory()
        with self._auth_lock:
            self.refresh_calls += 1
            return refresh_tokens(client, realm_id, refresh_token, self._clock)


__all__ = ["TokenManager"]
