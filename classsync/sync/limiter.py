"""Per-realm QBO call limiter: requests in flight, requests per minute, and throttle pauses."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

# QBO's published limits: 10 in flight and 500 requests per minute per realm, and 40 batch
# requests per minute per realm and app; docs/qbo.md, "Limits and throttling".
# Pacing spreads calls evenly (one every 60/rpm s) inside a sliding one-minute window, so a busy
# realm runs at the ceiling without ever tripping it; a 429 or a 5xx pauses the whole realm.
# Batches are paced at 40 per 500 requests, a ratio kept when the request ceiling is configured
# otherwise.
_BATCH_PER_REQUEST = 40 / 500


class _RealmGate:
    def __init__(
        self,
        max_in_flight: int,
        per_minute: int,
        clock: Callable[[], float],
        window_s: float = 60.0,
    ) -> None:
        # QBO counts per minute; the window is a setting only so that tests and benchmarks can
        # mirror an emulator that counts in shorter windows (budgets scale with it).
        self.window_s = window_s
        # Pacing runs exactly at the limit, so the window's first and last request are a full
        # window apart with no room: a first request that reached QBO later than booked (a token
        # refresh, a busy machine) would still be in QBO's window when the last one arrives, and
        # that one is throttled. Booking them one window plus a margin apart leaves room for that
        # lag: 0.5 s a minute for requests (0.8 % of the budget), 1 s for batches (1.7 %), whose
        # 429 pauses the whole realm. Lags of 0.6 s were seen on a loaded 2-core machine.
        self.margin_s = window_s / 120
        self.batch_margin_s = window_s / 60
        # A replica without a share has 0 slots: nothing starts, the pacing below just needs a rate.
        per_minute = max(1, per_minute)
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.slot_freed = threading.Condition()
        self.per_minute = per_minute
        self.per_window = _per_window(per_minute, window_s)
        self.interval = 60.0 / per_minute
        self.window: deque[float] = deque()
        self.next_start = 0.0
        self.paused_until = 0.0
        self.lock = threading.Lock()
        self.clock = clock
        self.batch_per_minute = _batches_for(per_minute)
        self.batch_per_window = _per_window(self.batch_per_minute, window_s)
        self.batch_window: deque[float] = deque()
        self.next_batch = 0.0

    def resize(self, max_in_flight: int, per_minute: int) -> None:
        """Apply this process's share of the realm's limits (other replicas hold the rest)."""
        with self.slot_freed:
            self.max_in_flight = max_in_flight
            self.slot_freed.notify_all()
        per_minute = max(1, per_minute)  # 0 slots: nothing starts (see __init__)
        with self.lock:
            self.per_minute = per_minute
            self.per_window = _per_window(per_minute, self.window_s)
            self.interval = 60.0 / per_minute
            self.batch_per_minute = _batches_for(per_minute)
            self.batch_per_window = _per_window(self.batch_per_minute, self.window_s)

    def try_reserve_batch(self, max_wait: float) -> float | None:
        """Book a batch start only if it is at most ``max_wait`` away; None leaves nothing booked.

        Called before a request slot is taken, so a batch waiting for its budget never holds a
        slot that single calls could use.
        """
        with self.lock:
            now = self.clock()
            _drop_before(self.batch_window, now - self.window_s - self.batch_margin_s)
            # Evenly spaced like single calls: a burst booked here could still reach QBO
            # bunched up (each waits for a slot after booking) and trip its window.
            start = max(now, self.next_batch)
            if len(self.batch_window) >= self.batch_per_window:
                start = max(
                    start,
                    self.batch_window[-self.batch_per_window] + self.window_s + self.batch_margin_s,
                )
            if start - now > max_wait:
                return None
            self.batch_window.append(start)
            self.next_batch = start + 60.0 / self.batch_per_minute
            return start - now

    def start_delay(self) -> float:
        """How long a call booked now would wait to start (pause, pacing, window); books nothing."""
        with self.lock:
            now = self.clock()
            _drop_before(self.window, now - self.window_s - self.margin_s)  # as reserve() does
            start = max(now, self.next_start, self.paused_until)
            if len(self.window) >= self.per_window:
                start = max(start, self.window[-self.per_window] + self.window_s + self.margin_s)
            return start - now

    def batch_wait(self) -> float:
        """Seconds until ``try_reserve_batch`` could book a start (nothing is booked)."""
        with self.lock:
            now = self.clock()
            start = max(now, self.next_batch)
            recent = [t for t in self.batch_window if t > now - self.window_s - self.batch_margin_s]
            if len(recent) >= self.batch_per_window:
                start = max(
                    start, recent[-self.batch_per_window] + self.window_s + self.batch_margin_s
                )
            return start - now

    def acquire_slot(self) -> None:
        with self.slot_freed:
            while self.in_flight >= self.max_in_flight:
                self.slot_freed.wait()
            self.in_flight += 1

    def release_slot(self) -> None:
        with self.slot_freed:
            self.in_flight -= 1
            self.slot_freed.notify()

    def reserve(self) -> float:
        """Book the next start time; returns how long the caller must wait for it."""
        with self.lock:
            now = self.clock()
            _drop_before(self.window, now - self.window_s - self.margin_s)
            start = max(now, self.next_start, self.paused_until)
            if len(self.window) >= self.per_window:
                start = max(start, self.window[-self.per_window] + self.window_s + self.margin_s)
            while len(self.window) > self.per_window:  # after a resize to a smaller share
                self.window.popleft()
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
        window_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._max_in_flight = max_in_flight
        self._per_minute = per_minute
        self._window_seconds = window_seconds
        self._replicas = 1
        self._rank = 0
        self._clock = clock
        self._sleep = sleep
        self._gates: dict[str, _RealmGate] = {}
        self._lock = threading.Lock()

    def _gate(self, realm_id: str) -> _RealmGate:
        with self._lock:
            gate = self._gates.get(realm_id)
            if gate is None:
                in_flight, per_minute = self._share()
                gate = _RealmGate(in_flight, per_minute, self._clock, self._window_seconds)
                self._gates[realm_id] = gate
            return gate

    def _share(self) -> tuple[int, int]:
        return replica_share(self._max_in_flight, self._per_minute, self._replicas, self._rank)

    def set_replicas(self, count: int, rank: int = 0) -> None:
        """``count`` live processes share each realm's QBO limits; this one is number ``rank``.

        QBO counts per realm across every client (docs/qbo.md, "Limits and throttling"), so N
        replicas each pacing at the full rate would together exceed it. See ``replica_share``.
        """
        with self._lock:
            self._replicas = max(1, count)
            self._rank = min(max(0, rank), self._replicas - 1)
            in_flight, per_minute = self._share()
            gates = list(self._gates.values())
        for gate in gates:
            gate.resize(in_flight, per_minute)

    @property
    def replicas(self) -> int:
        """How many processes this one currently shares the limits with (itself included)."""
        return self._replicas

    @property
    def share(self) -> tuple[int, int]:
        """This process's (requests in flight, requests per minute) for each realm."""
        with self._lock:
            return self._share()

    @property
    def has_share(self) -> bool:
        """False when other replicas hold every in-flight slot: this one must not call QBO."""
        return self.share[0] > 0

    def call(self, realm_id: str, *, batch: bool = False) -> AbstractContextManager[None]:
        """Hold one QBO request slot for ``realm_id`` for the duration of the block.

        ``batch=True`` for a ``/batch`` request: it is paced by the batch budget as well.
        """
        gate = self._gate(realm_id)
        # With no limit on the wait, a batch start is always booked (never None).
        budget_wait = gate.try_reserve_batch(max_wait=math.inf) if batch else 0.0
        return self._slot(gate, budget_wait or 0.0)

    @contextmanager
    def _slot(self, gate: _RealmGate, budget_wait: float) -> Iterator[None]:
        """Wait ``budget_wait`` (batch budget, booked before a slot so no slot idles), take an
        in-flight slot, then wait for the paced start time and any throttle pause."""
        if budget_wait > 0:
            self._sleep(budget_wait)
        gate.acquire_slot()
        try:
            wait = gate.reserve()
            while wait > 0:
                self._sleep(wait)
                # A throttle pause may have started while we slept.
                wait = max(0.0, gate.paused_until - self._clock())
            yield
        finally:
            gate.release_slot()

    def try_batch_call(
        self, realm_id: str, *, max_wait: float
    ) -> AbstractContextManager[None] | None:
        """A slot for one ``/batch`` request if the batch budget has one within ``max_wait`` s.

        None when the batch budget is spent for now: the caller sends single requests instead,
        which QBO meters only against the general budget, so a busy realm mixes both rather than
        idling behind the 40-batches-a-minute limit; docs/qbo.md, "Limits and throttling".
        """
        gate = self._gate(realm_id)
        wait = gate.try_reserve_batch(max_wait)
        if wait is None:
            return None
        return self._slot(gate, wait)

    def in_flight_share(self, realm_id: str) -> int:
        """How many calls this process may have in flight to ``realm_id`` (its replica share)."""
        return self._gate(realm_id).max_in_flight

    def start_delay(self, realm_id: str) -> float:
        """Seconds a call to ``realm_id`` booked now would wait before starting (0: at once).

        Books nothing: the engine asks before claiming, so no worker is parked on a realm that
        is paused or paced far ahead.
        """
        return self._gate(realm_id).start_delay()

    def batch_wait(self, realm_id: str) -> float:
        """Seconds until the realm's batch budget has room for one more batch request."""
        return self._gate(realm_id).batch_wait()

    def pause(self, realm_id: str, seconds: float) -> None:
        """Stop starting calls for ``realm_id`` for ``seconds`` (after a 429 or 503)."""
        gate = self._gate(realm_id)
        with gate.lock:
            gate.paused_until = max(gate.paused_until, self._clock() + seconds)


def replica_share(max_in_flight: int, per_minute: int, replicas: int, rank: int) -> tuple[int, int]:
    """(in flight, per minute) of replica number ``rank`` (0-based) among ``replicas`` live ones.

    The realm's limits are divided exactly: the first ``total % replicas`` ranks take one more,
    so the shares of all replicas add up to the totals and never exceed them. With more replicas
    than in-flight slots, ranks past ``max_in_flight`` get no slot (and no per-minute budget):
    they claim no jobs until replicas ahead of them leave.
    """
    replicas = max(1, replicas)
    in_flight = _nth_part(max_in_flight, replicas, rank)
    working = min(replicas, max_in_flight)
    rate = _nth_part(per_minute, working, rank) if in_flight else 0
    return in_flight, rate


def _nth_part(total: int, parts: int, index: int) -> int:
    if not 0 <= index < parts:
        return 0
    return total // parts + (1 if index < total % parts else 0)


def _drop_before(starts: deque[float], horizon: float) -> None:
    """Forget booked starts at or before ``horizon``.

    The horizon is one window plus the margin back, not one window: a start just over a window
    old still decides, with the margin, when the next one may go (window[-per_window] + window +
    margin). Dropped at one window, a caller who came that late found the window one short and
    started at once, the margin lost; the first request of the window, a little late on its way,
    was still in QBO's window and the new one got a 429 (docs/performance.md, round 2).
    """
    while starts and starts[0] <= horizon:
        starts.popleft()


def _per_window(per_minute: int, window_s: float) -> int:
    return max(1, int(per_minute * window_s / 60.0))


def _batches_for(per_minute: int) -> int:
    return max(1, round(per_minute * _BATCH_PER_REQUEST))
