"""Keeps this process's share of each realm's QBO limits in line with the live replica count."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

import structlog

from classsync.sync.limiter import RateLimiter
from classsync.sync.ports import ReplicaSeat
from classsync.sync.worker_thread import WorkerThread

log = structlog.get_logger(__name__)


class Registry(Protocol):
    """What the heartbeat needs from storage (classsync.store.replicas.ReplicaRegistry)."""

    def heartbeat(self, replica_id: str, now: datetime) -> ReplicaSeat: ...

    def leave(self, replica_id: str) -> None: ...


class ReplicaHeartbeat:
    """Beats every ``interval`` seconds and resizes the limiter to this replica's exact share.

    Every replica computes the same ranking (oldest first), so the shares add up to the realm's
    limits (``classsync.sync.limiter.replica_share``). Between a change and the others' next beat
    the shares can overlap for at most one ``interval``.
    """

    def __init__(
        self,
        registry: Registry,
        limiter: RateLimiter,
        replica_id: str,
        *,
        interval: float,
        clock: Callable[[], datetime],
    ) -> None:
        self._registry = registry
        self._limiter = limiter
        self._replica_id = replica_id
        self._interval = interval
        self._clock = clock
        self._seat = ReplicaSeat(replicas=1, rank=0)
        self._worker = WorkerThread("replica-heartbeat", self._run)

    def beat(self) -> None:
        """One heartbeat (also called once before the engine starts, so the first calls are paced)."""
        seat = self._registry.heartbeat(self._replica_id, self._clock())
        if seat != self._seat:
            self._seat = seat
            self._limiter.set_replicas(seat.replicas, seat.rank)
            in_flight, per_minute = self._limiter.share
            log.info(
                "replica_share_changed",
                replicas=seat.replicas,
                rank=seat.rank,
                in_flight=in_flight,
                per_minute=per_minute,
            )

    def start(self) -> None:
        """Beat now, then on a daemon thread."""
        self.beat()
        self._worker.start()

    def _run(self) -> None:
        while not self._worker.sleep(self._interval):
            try:
                self.beat()
            except Exception:
                # A database hiccup: keep the current share and try again at the next beat.
                log.warning("replica_heartbeat_failed", exc_info=True)

    def stop(self) -> None:
        """Stop beating and leave the registry."""
        self._worker.stop(timeout=5)
        try:
            self._registry.leave(self._replica_id)
        except Exception:
            log.warning("replica_leave_failed", exc_info=True)
