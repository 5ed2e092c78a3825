"""Per-realm QBO call limiter: requests in flight, requests per minute, and throttle pauses."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# QBO's published limits (qbo-reference.md §4): 10 in flight and 500 requests per minute per realm.
# Pacing spreads calls evenly (one every 60/rpm s) inside a sliding one-minute window, so a busy
# realm runs at the ceiling without ever tripping it; a 429 pauses the whole realm.


class _RealmGate:
    def __init__(self, max_in_flight: int, per_minute: int, clock: Callable[[], float]) -> None:
        self.slots = threading.BoundedSemaphore(max_in_flight)
        self.per_minute = per_minute
        self.interval = 60.0 / per_minute
        self.window: deque[float] = deque()
        self.next_start = 0.0
        self.paused_until = 0.0
        self.lock = threading.Lock()
        self.clock = clock

    def reserve(self) -> float:
        """Book the next start time; returns how long the caller must wait for it."""
        with self.lock:
            now = self.clock()
            while self.window and self.window[0] <= now - 60.0:
                self.window.popleft()
            start = max(now, self.next_start, self.paused_until)
            if len(self.window) >= self.per_minute:
                start = max(start, self.window[-self.per_minute] + 60.0)
            self.window.append(start)
            self.next_start = start + self.interval
            return start - now


class RateLimiter:
    """Blocks callers so each realm stays under its in-flight and per-minute limits."""

    def __init__(
        self,
        *,
        max_in_flight: int = 10,
        per_minute: int = 500,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._max_in_flight = max_in_flight
        self._per_minute = per_minute
        self._clock = clock
        self._sleep = sleep
        self._gates: dict[str, _RealmGate] = {}
        self._lock = threading.Lock()

    def _gate(self, realm_id: str) -> _RealmGate:
        with self._lock:
            gate = self._gates.get(realm_id)
            if gate is None:
                gate = _RealmGate(self._max_in_flight, self._per_minute, self._clock)
                self._gates[realm_id] = gate
            return gate

    @contextmanager
    def call(self, realm_id: str) -> Iterator[None]:
        """Hold one QBO request slot for ``realm_id`` for the duration of the block."""
        gate = self._gate(realm_id)
        gate.slots.acquire()
        try:
            wait = gate.reserve()
            while wait > 0:
                self._sleep(wait)
                # A throttle pause may have started while we slept.
                wait = max(0.0, gate.paused_until - self._clock())
            yield
        finally:
            gate.slots.release()

    def pause(self, realm_id: str, seconds: float) -> None:
        """Stop starting calls for ``realm_id`` for ``seconds`` (after a 429 or 503)."""
        gate = self._gate(realm_id)
        with gate.lock:
            gate.paused_until = max(gate.paused_until, self._clock() + seconds)

    def paused_for(self, realm_id: str) -> float:
        """Seconds left in the realm's pause (0 when not paused)."""
        return max(0.0, self._gate(realm_id).paused_until - self._clock())
