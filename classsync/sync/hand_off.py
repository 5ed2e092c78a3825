"""Direct hand-off: a Class stored by this process goes straight to one of its idle workers.

Through the queue, a one-Class call costs a doorbell wake, a claim transaction (five statements)
and often an empty claim by a sibling before QBO is even called (docs/performance.md,
"c. overhead"). When a worker is idle and the realm can start a QBO call now, ingest leases the
job to this process in the very statement that stores it and hands the job over in memory.

Every guarantee of the queue holds: the job is in the database, IN_PROGRESS under a lease, so a
crash loses nothing and another replica reclaims it as "outcome unknown" once the lease runs out;
the realm is held in the ``RealmRotation`` like a claim (its per-realm cap, in-flight share and
pacing horizon apply) and every QBO call still goes through the limiter; only new top-level
Classes come this way (no parent to wait for); a newer version sent meanwhile moves the job's
generation on and the outcome re-queues it, as for a claimed job.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from classsync.sync.limiter import RateLimiter
from classsync.sync.ports import ClaimedJob, Clock, JobLease
from classsync.sync.realm_rotation import RealmRotation


class HandOff:
    """Jobs leased by ingest, waiting for the next worker; and how many workers are idle."""

    def __init__(
        self,
        rotation: RealmRotation,
        limiter: RateLimiter,
        clock: Clock,
        process_owner: str,
        lease: timedelta,
        ring: Callable[[], None],
    ) -> None:
        self._rotation = rotation
        self._limiter = limiter
        self._clock = clock
        self._owner_prefix = f"{process_owner}-h"
        self._lease = lease
        self._ring = ring
        self._lock = threading.Lock()
        self._idle = 0
        self._reserved = 0
        self._queue: deque[tuple[str, ClaimedJob]] = deque()
        self._numbers = itertools.count()

    # --- ingest ------------------------------------------------------------------------------
    def reserve(self, realm_id: str) -> JobLease | None:
        """A lease to write with the job, when a worker is free for it and the realm can start a
        QBO call now (the realm is then held); None: queue the job as usual."""
        with self._lock:
            if self._idle - self._reserved - len(self._queue) <= 0:
                return None
            if not self._limiter.has_share or not self._rotation.hold(realm_id):
                return None
            self._reserved += 1
        # Each hand-off leases under its own owner, so the lease keeper and the outcome writes
        # treat it like one worker's claim.
        owner = f"{self._owner_prefix}{next(self._numbers)}"
        return JobLease(owner=owner, until=self._clock.now() + self._lease)

    def hand_over(self, lease: JobLease, job: ClaimedJob) -> None:
        """The job is committed under ``lease``: the next free worker syncs it."""
        with self._lock:
            self._reserved -= 1
            self._queue.append((lease.owner, job))
        self._ring()

    def cancel(self, realm_id: str) -> None:
        """Nothing was leased after ``reserve`` (the Class took the general path)."""
        with self._lock:
            self._reserved -= 1
        self._rotation.release(realm_id)

    # --- workers -----------------------------------------------------------------------------
    def take(self) -> tuple[str, ClaimedJob] | None:
        """The oldest job handed over and its lease owner; the caller releases its realm."""
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def waiting(self) -> bool:
        """True while a job handed over waits for a worker."""
        with self._lock:
            return bool(self._queue)

    @contextmanager
    def idle(self) -> Iterator[None]:
        """A worker waits for work inside this block (it counts as free for a hand-off)."""
        with self._lock:
            self._idle += 1
        try:
            yield
        finally:
            with self._lock:
                self._idle -= 1

    def queued(self) -> dict[str, list[str]]:
        """Lease owner -> class ids of the jobs handed over but not taken yet: the lease keeper
        renews them (a job must not be reclaimed while it waits), shutdown releases them."""
        with self._lock:
            return {owner: [job.class_id] for owner, job in self._queue}
