"""The sync engine's worker threads: a base that always runs, and extra workers on demand.

Why elastic. QBO's limits are per realm (10 in flight and 500 requests a minute each), so the
concurrency the service may use grows with the number of busy realms; a fixed number of threads
would cap it. With more busy realms than threads, every thread can be inside another realm's
QBO call when a one-Class call to an idle realm arrives, and that call then waits for a foreign
QBO call to end (200 ms to seconds) before any thread looks at it. So when work is due in a realm
that holds no worker and no worker is idle, the engine asks for one more thread (``grow``), up to
``limit`` (``SYNC_MAX_WORKERS``). An extra thread that has found nothing to do for
``idle_exit_seconds`` leaves again (``retire``), down to ``base`` (``SYNC_WORKERS``).

Threads are cheap here: a worker spends almost all of its time waiting on QBO's HTTP answer
(I/O, the GIL released), holds a database connection only for its short transactions (claim,
outcome), never across a QBO call, and costs well under a megabyte of resident memory (its
stack pages are touched lazily). Beyond ``limit`` the old behaviour returns: a due realm waits
for the first thread to finish its call.

Each thread leases jobs as its own owner, ``<owner_prefix>-<slot>``. Slots of retired threads
are reused, so at most ``limit`` owner names ever exist and ``owners`` can name them all when the
engine hands back its leases on stop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)

# An extra worker that found nothing to do for this long leaves (a few poll intervals: a burst
# a second apart keeps its threads, a quiet minute gives them back).
IDLE_EXIT_SECONDS = 5.0


class WorkerPool:
    """Starts, counts and retires the engine's worker threads; each runs ``target(owner)``."""

    def __init__(
        self,
        target: Callable[[str], None],
        base: int,
        limit: int | None,
        owner_prefix: str,
        *,
        start_thread: Callable[[threading.Thread], None] = threading.Thread.start,
    ) -> None:
        """``limit`` None: a fixed pool of ``base`` workers."""
        limit = base if limit is None else limit
        if base < 1 or limit < base:
            raise ValueError(f"need 1 <= base ({base}) <= limit ({limit})")
        self._target = target
        self.base = base
        self.limit = limit
        self._owner_prefix = owner_prefix
        self._start_thread = start_thread  # tests pass a no-op to count decisions only
        self._lock = threading.Lock()
        self._free_slots: list[int] = []  # slots of retired workers, reused smallest first
        self._next_slot = 0
        self._running: set[int] = set()
        self._threads: list[threading.Thread] = []
        self._closed = True  # until ``start``: an engine stepped by hand (tests) adds no thread
        self._deciding = threading.Lock()  # see grow_if
        self._asked = threading.Event()

    @property
    def size(self) -> int:
        """Workers running now."""
        with self._lock:
            return len(self._running)

    def owners(self) -> list[str]:
        """Every lease owner a worker of this pool has used (for handing back leases)."""
        with self._lock:
            return [self._owner(slot) for slot in range(self._next_slot)]

    def start(self) -> None:
        """Start the base workers."""
        with self._lock:
            self._closed = False
        for _ in range(self.base):
            self._add()

    def grow(self) -> bool:
        """Start one extra worker unless ``limit`` are running; True when one was started."""
        started = self._add()
        if started:
            log.debug("sync_worker_added", workers=self.size)
        return started

    def grow_if(self, wanted: Callable[[], bool]) -> bool:
        """Start one extra worker if ``wanted()`` says so; True if this call started one.

        One decision at a time (racing callers would each add a worker), and nobody waits for
        it: a thread start can take a while on a busy machine, and the engine asks on every
        claim, ingest and retry timer. A caller that finds a decision under way leaves a request
        that the decider takes up before it lets go, so no request is lost.
        """
        self._asked.set()
        started = False
        while self._asked.is_set() and self._deciding.acquire(blocking=False):
            try:
                self._asked.clear()
                if wanted():
                    started = self.grow() or started
            finally:
                self._deciding.release()
        return started

    def retire(self, owner: str) -> bool:
        """The worker ``owner`` has been idle: True (and it must return) while more than
        ``base`` run; False keeps it."""
        slot = int(owner.rsplit("-", 1)[1])
        with self._lock:
            if len(self._running) <= self.base or slot not in self._running:
                return False
            self._running.discard(slot)
            self._free_slots.append(slot)
            self._free_slots.sort()
        log.debug("sync_worker_retired", workers=self.size)
        return True

    def close(self) -> list[threading.Thread]:
        """Start no more workers; the threads started so far (to join)."""
        with self._lock:
            self._closed = True
            threads, self._threads = self._threads, []
            self._running.clear()
            self._free_slots.clear()
            return [t for t in threads if t.is_alive() or t.ident is None]

    def _add(self) -> bool:
        with self._lock:
            if self._closed or len(self._running) >= self.limit:
                return False
            if self._free_slots:
                slot = self._free_slots.pop(0)
            else:
                slot, self._next_slot = self._next_slot, self._next_slot + 1
            self._running.add(slot)
            self._threads = [t for t in self._threads if t.is_alive() or t.ident is None]
            thread = threading.Thread(
                target=self._target,
                args=(self._owner(slot),),
                name=f"sync-worker-{slot}",
                daemon=True,
            )
            self._threads.append(thread)
        self._start_thread(thread)
        return True

    def _owner(self, slot: int) -> str:
        return f"{self._owner_prefix}-{slot}"


def idle_too_long(idle_since: float, *, now: float | None = None) -> bool:
    """Has a worker idle since ``idle_since`` (monotonic) waited long enough to leave?"""
    return (time.monotonic() if now is None else now) - idle_since >= IDLE_EXIT_SECONDS
