"""Which realm a worker claims from next: round-robin over realms with due work and QBO room.

Claiming across realms in one queue order (parents first, then oldest) lets a realm with a big
backlog take every worker while a one-Class call to an idle realm waits behind it, and workers
that claimed more than a realm's QBO limits allow sit blocked in its limiter. So workers take
turns over the realms that have due jobs, and skip a realm that cannot start a QBO call now:
paused after a 429 or 5xx, paced further out than a short horizon, or already holding its
in-flight share of workers. One worker is kept back from any single realm (when there are two
or more), so a newly busy realm always finds one free within one QBO call of the others.

A realm that holds no worker goes before those that hold one, in turn order. With more busy
realms than workers the engine adds workers while such a realm exists (``has_unserved``, see
``classsync/sync/worker_pool.py``); the preference makes the added worker, or the next one to
finish, serve that realm rather than one already served.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from classsync.sync.limiter import RateLimiter

# A realm whose next paced QBO start is further away than this is left alone for now.
PACE_HORIZON_S = 0.25


class RealmRotation:
    """The realms with due work, in turn order, and how many workers each one holds."""

    def __init__(
        self,
        limiter: RateLimiter,
        *,
        workers: int,
        refresh_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limiter = limiter
        # At most this many workers on one realm: all but one, so another realm gets a turn.
        self._per_realm_cap = max(1, workers - 1)
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._order: list[str] = []  # realms with (probably) due work, in turn order
        self._cursor = 0
        self._busy: dict[str, int] = {}  # realm -> workers holding jobs of it
        self._woken: dict[str, float] = {}  # realm -> when new work was last announced
        self._refreshed_at = -float("inf")

    # --- what is due -------------------------------------------------------------------------
    def wake(self, realm_id: str) -> None:
        """New work was committed in ``realm_id``."""
        with self._lock:
            self._woken[realm_id] = self._clock()
            if realm_id not in self._order:
                self._order.insert(self._cursor, realm_id)  # its turn comes next

    def needs_refresh(self) -> bool:
        """True when no realm is known to be due, or the list is older than the poll interval."""
        with self._lock:
            stale = self._clock() - self._refreshed_at >= self._refresh_seconds
            return stale or not self._order

    def refresh(self, due: Iterable[str], *, looked_at: float) -> None:
        """Replace the list with ``due`` (read from the store at ``looked_at``, a clock value).

        Realms announced after that moment stay: their work may be newer than the read.
        """
        due = list(dict.fromkeys(due))
        with self._lock:
            recent = [r for r, at in self._woken.items() if at >= looked_at and r not in due]
            up_next = self._order[self._cursor] if self._order else None
            kept = [r for r in self._order if r in due or r in recent]
            cursor = kept.index(up_next) if up_next in kept else 0
            # Realms new to the list get their turn first: they have waited least to be seen.
            new = [r for r in [*due, *recent] if r not in kept]
            self._order = kept[:cursor] + new + kept[cursor:]
            self._cursor = cursor
            self._refreshed_at = looked_at

    def now(self) -> float:
        """The rotation's clock (for ``refresh`` and ``drained``)."""
        return self._clock()

    # --- taking turns ------------------------------------------------------------------------
    def take(self, skip: set[str]) -> str | None:
        """The next realm in turn, not in ``skip``, that can start a QBO call now; held by the
        caller until ``release``. None when no realm can."""
        with self._lock:
            count = len(self._order)
            fallback: int | None = None  # the first in turn that already holds a worker
            for step in range(count):
                index = (self._cursor + step) % count
                realm_id = self._order[index]
                if realm_id in skip or not self._has_room(realm_id):
                    continue
                if not self._busy.get(realm_id):
                    return self._hold(index)
                if fallback is None:
                    fallback = index
            return None if fallback is None else self._hold(fallback)

    def holding(self) -> int:
        """Workers holding a realm now (between ``take`` and ``release``)."""
        with self._lock:
            return sum(self._busy.values())

    def has_unserved(self) -> bool:
        """Does a realm with due work hold no worker, though it could start a QBO call now?"""
        with self._lock:
            return any(not self._busy.get(r) and self._has_room(r) for r in self._order)

    def _hold(self, index: int) -> str:
        realm_id = self._order[index]
        self._cursor = (index + 1) % len(self._order)
        self._busy[realm_id] = self._busy.get(realm_id, 0) + 1
        return realm_id

    def hold(self, realm_id: str) -> bool:
        """Hold ``realm_id`` as ``take`` would, for a job handed over directly
        (``sync/hand_off.py``), if it can start a QBO call now; False otherwise."""
        with self._lock:
            if not self._has_room(realm_id):
                return False
            self._busy[realm_id] = self._busy.get(realm_id, 0) + 1
            return True

    def release(self, realm_id: str) -> None:
        """The worker is done with the jobs it claimed in ``realm_id``."""
        with self._lock:
            left = self._busy.get(realm_id, 0) - 1
            if left > 0:
                self._busy[realm_id] = left
            else:
                self._busy.pop(realm_id, None)

    def drained(self, realm_id: str, *, looked_at: float) -> None:
        """A claim in ``realm_id`` (started at ``looked_at``) found nothing due: drop it for now."""
        with self._lock:
            if self._woken.get(realm_id, -float("inf")) >= looked_at:
                return  # new work arrived while we looked
            self._woken.pop(realm_id, None)
            if realm_id in self._order:
                index = self._order.index(realm_id)
                self._order.pop(index)
                if index < self._cursor:
                    self._cursor -= 1
                self._cursor %= max(1, len(self._order))

    def _has_room(self, realm_id: str) -> bool:
        busy = self._busy.get(realm_id, 0)
        if busy >= self._per_realm_cap or busy >= self._limiter.in_flight_share(realm_id):
            return False
        return self._limiter.start_delay(realm_id) <= PACE_HORIZON_S
