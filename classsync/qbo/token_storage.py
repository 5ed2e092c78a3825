"""Where realm tokens live: the TokenStore protocol and an in-memory store for tests and tooling."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from classsync.domain import RealmTokens

# The SQL implementation, shared by every replica, lives in classsync/store/token_store.py.


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
                if staged.disconnected is not None:
                    self._disconnected[realm_id] = staged.disconnected
            if staged.saved is not None and self._on_commit is not None:
                self._on_commit(realm_id, staged.saved)


__all__ = ["InMemoryTokenStore", "LockedRealm", "TokenStore"]
