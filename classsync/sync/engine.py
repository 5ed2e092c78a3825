"""Sync engine: worker threads that lease due jobs, a doorbell that wakes them, a lease keeper."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import structlog

from classsync.domain import QboClass
from classsync.sync.batch_sync import BatchSync
from classsync.sync.clock import SystemClock
from classsync.sync.hand_off import HandOff
from classsync.sync.job_sync import JobSync
from classsync.sync.limiter import RateLimiter
from classsync.sync.outcomes import Outcomes
from classsync.sync.ports import ClaimedJob, Clock, OneStatementOutcome, QboGateway, UnitOfWork
from classsync.sync.realm_rotation import RealmRotation
from classsync.sync.remote_ports import ConflictRecorder
from classsync.sync.retry_policy import RetryPolicy
from classsync.sync.settled import SettledBoard
from classsync.sync.worker_pool import WorkerPool, idle_too_long

log = structlog.get_logger(__name__)


class Doorbell:
    """Wakes ONE idle worker per ring (an Event would wake them all to race for one job).

    Rings are counted, so a ring that arrives while every worker is busy is not lost: the next
    worker to go idle answers it at once. The count is capped: a backlog needs one look, not one
    per ring.
    """

    def __init__(self, cap: int) -> None:
        self._condition = threading.Condition()
        self._rings = 0
        self._cap = max(1, cap)

    def ring(self) -> None:
        """Wake one idle worker (or the next one to go idle)."""
        with self._condition:
            self._rings = min(self._cap, self._rings + 1)
            self._condition.notify()

    def ring_all(self) -> None:
        """Wake every worker (shutdown)."""
        with self._condition:
            self._rings = self._cap
            self._condition.notify_all()

    def wait(self, timeout: float) -> None:
        """Wait for a ring, at most ``timeout`` seconds."""
        with self._condition:
            if not self._rings:
                self._condition.wait(timeout)
            if self._rings:
                self._rings -= 1


class SyncEngine:
    """Leases jobs, calls QBO through the limiter, records outcomes, schedules retries.

    ``process_owner`` names this process (replica); each worker thread leases jobs under its own
    ``lease_owner`` (``<process_owner>-<n>``), so a sibling can never take a job over as if it
    were its own. The lease keeper renews what every worker still holds.

    ``workers`` threads always run; up to ``max_workers`` run while realms with due work would
    otherwise hold no worker (see ``classsync/sync/worker_pool.py``).
    """

    _keeper: threading.Thread | None = None  # the lease keeper, while started

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        gateway: QboGateway,
        limiter: RateLimiter,
        policy: RetryPolicy,
        board: SettledBoard,
        *,
        workers: int = 10,
        max_workers: int | None = None,
        lease_seconds: float = 60.0,
        poll_seconds: float = 1.0,
        batch_size: int = 1,
        clock: Clock | None = None,
        remote_changed: Callable[[str, QboClass], int] | None = None,
        conflicts: ConflictRecorder | None = None,
        one_statement: OneStatementOutcome | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._limiter = limiter
        self.board = board  # where settled jobs are posted for waiting callers
        self._workers = workers
        self._lease = timedelta(seconds=lease_seconds)
        self._poll_seconds = poll_seconds
        self._clock = clock or SystemClock()
        self.process_owner = uuid.uuid4().hex[:12]
        self._bell = Doorbell(cap=workers)
        self._stopping = threading.Event()
        self._pool = WorkerPool(self._run, workers, max_workers, self.process_owner)
        self._held: dict[str, list[str]] = {}  # lease owner -> class ids it is working on
        self._held_lock = threading.Lock()
        self._rotation = RealmRotation(limiter, workers=workers, refresh_seconds=poll_seconds)
        # Jobs ingest leased to this process in the statement that stored them (no claim).
        self.hand_off = HandOff(
            self._rotation, limiter, self._clock, self.process_owner, self._lease, self._bell.ring
        )
        outcomes = Outcomes(
            uow_factory,
            limiter,
            policy,
            board,
            self._clock,
            wake=self.wake,
            poll_seconds=poll_seconds,
            is_stopping=self._stopping.is_set,
            one_statement=one_statement,
        )
        self._job_sync = JobSync(
            uow_factory,
            gateway,
            limiter,
            policy,
            outcomes,
            self._clock,
            remote_changed=remote_changed,
            conflicts=conflicts,
        )
        self._batch_sync = BatchSync(
            gateway, limiter, self._job_sync, outcomes, wake=self._bell.ring, batch_size=batch_size
        )

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the base worker threads and the lease keeper."""
        self._stopping.clear()
        self._pool.start()
        self._keeper = threading.Thread(
            target=self._keep_leases, name="sync-lease-keeper", daemon=True
        )
        self._keeper.start()
        log.info(
            "sync_engine_started",
            workers=self._workers,
            max_workers=self._pool.limit,
            owner=self.process_owner,
        )

    def wake(self, realm_id: str | None = None) -> None:
        """New work was committed (in ``realm_id``): look for it now rather than at the next poll."""
        if realm_id is not None:
            self._rotation.wake(realm_id)
        self._more_hands()

    def _more_hands(self) -> None:
        """There may be work for one more worker: add one when every worker holds a realm and a
        realm with due work holds none (and ``max_workers`` allows); else ring, so that a free
        worker looks (the rotation hands it the realm without a worker first).

        "Free" is counted from the rotation (workers minus realms held), not from the doorbell:
        rings pile up while everyone is busy, and a worker between two claims is free too.
        Adding only for a realm without a worker keeps the pool near one worker per busy realm
        plus the base, not one per QBO slot: every extra runnable thread costs the others GIL
        time, and a realm's further slots are filled by workers taking turns.
        """
        if self._workers_free() > 0 or not self._pool.grow_if(self._worker_wanted):
            self._bell.ring()

    def _workers_free(self) -> int:
        return self._pool.size - self._rotation.holding()

    def _worker_wanted(self) -> bool:
        return self._workers_free() <= 0 and self._rotation.has_unserved()

    def stop(self, timeout: float = 20.0) -> None:
        """Finish in-flight QBO calls (bounded by ``timeout``), then hand back leases."""
        self._stopping.set()
        self._bell.ring_all()
        deadline = time.monotonic() + timeout
        threads = self._pool.close()
        if self._keeper is not None:
            threads.append(self._keeper)
            self._keeper = None
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        try:
            with self._uow_factory() as uow:
                now = self._clock.now()
                owners = [self.process_owner, *self._pool.owners(), *self.hand_off.queued()]
                released = sum(uow.jobs.release(owner, now) for owner in owners)
                uow.commit()
            log.info("sync_engine_stopped", leases_released=released)
        except Exception:
            # Not fatal: leases expire by themselves and another worker reclaims them.
            log.exception("sync_engine_release_failed")

    # --- worker loop -------------------------------------------------------------------------
    def _run(self, lease_owner: str) -> None:
        idle_since = time.monotonic()
        while not self._stopping.is_set():
            try:
                worked = self._run_handed_over() or self.run_once(lease_owner)
            except Exception:
                log.exception("sync_claim_failed")
                self._stopping.wait(self._poll_seconds)
                continue
            if worked:
                idle_since = time.monotonic()
            elif idle_too_long(idle_since) and self._pool.retire(lease_owner):
                return  # an extra worker, no longer needed
            else:
                with self.hand_off.idle():
                    if not self.hand_off.waiting():
                        self._bell.wait(self._poll_seconds)

    def _run_handed_over(self) -> int:
        """Sync a job ingest leased and handed over (no claim); 1 if there was one."""
        handed = self.hand_off.take()
        if handed is None:
            return 0
        lease_owner, job = handed
        try:
            self._process(lease_owner, [job])
        finally:
            self._rotation.release(job.realm_id)
        return 1

    def run_once(self, lease_owner: str | None = None) -> int:
        """Claim due jobs once and sync them; how many were claimed.

        The worker threads call this in a loop; tests call it directly to take one step.
        """
        lease_owner = lease_owner or f"{self.process_owner}-0"
        claimed: tuple[str, list[ClaimedJob]] | None = None
        try:
            claimed = self._claim(lease_owner)
        finally:
            if claimed is None or len(claimed[1]) < 2:
                self._batch_sync.claim_done(lease_owner)  # no batch: free the ticket at once
        if claimed is None:
            return 0
        realm_id, jobs = claimed
        try:
            self._more_hands()  # there may be more: let an idle sibling (or a new one) look
            self._process(lease_owner, jobs)
        finally:
            self._rotation.release(realm_id)
        return len(jobs)

    def _process(self, lease_owner: str, jobs: list[ClaimedJob]) -> None:
        with self._held_lock:
            self._held[lease_owner] = [job.class_id for job in jobs]
        try:
            if len(jobs) > 1:
                self._batch_sync.process(jobs, lease_owner)
            else:
                self._job_sync.process(jobs[0], lease_owner)
        except Exception:
            # Recording an outcome failed (database gone, deadlock victim...). The leases
            # expire and the jobs are reclaimed as "outcome unknown": nothing is lost, and
            # the thread must live on.
            log.exception("sync_jobs_unrecorded", jobs=len(jobs))
            with self._held_lock:
                self._held.pop(lease_owner, None)  # let the leases run out
            self._stopping.wait(self._poll_seconds)
        finally:
            self._batch_sync.claim_done(lease_owner)
            with self._held_lock:
                self._held.pop(lease_owner, None)

    def _claim(self, lease_owner: str) -> tuple[str, list[ClaimedJob]] | None:
        """Due jobs of the next realm in turn that can start a QBO call now (see RealmRotation).

        The realm is held in the rotation until the caller releases it. The list of realms with
        due work is read again when it is empty or older than the poll interval.
        """
        if not self._limiter.has_share:
            return None  # other replicas hold every QBO slot of the realms for now
        tried: set[str] = set()
        refreshed = False
        while True:
            realm_id = self._rotation.take(tried)
            if realm_id is None:
                if refreshed or not self._rotation.needs_refresh():
                    return None
                self._refresh_due_realms()
                refreshed = True
                continue
            looked_at = self._rotation.now()
            try:
                jobs = self._claim_in(realm_id, lease_owner)
            except BaseException:
                self._rotation.release(realm_id)
                raise
            if jobs:
                return realm_id, jobs
            self._rotation.release(realm_id)
            self._rotation.drained(realm_id, looked_at=looked_at)
            tried.add(realm_id)

    def _refresh_due_realms(self) -> None:
        looked_at = self._rotation.now()
        with self._uow_factory() as uow:  # a read: nothing to commit
            due = uow.jobs.due_realms(self._clock.now())
        self._rotation.refresh(due, looked_at=looked_at)

    def _claim_in(self, realm_id: str, lease_owner: str) -> list[ClaimedJob]:
        with self._uow_factory() as uow:
            jobs = uow.jobs.claim(
                owner=lease_owner,
                limit=self._batch_sync.claim_limit(realm_id, lease_owner),
                lease=self._lease,
                now=self._clock.now(),
                realm_id=realm_id,
            )
            uow.commit()
            return jobs

    def _keep_leases(self) -> None:
        """Renew the leases of jobs still being worked on, every third of the lease.

        A worker may hold a job longer than the lease: waiting for a QBO slot behind a 60 s
        throttle pause (docs/qbo.md, "Limits and throttling"), or in a slow call. Were its lease
        to run out, another worker would reclaim the job as "outcome unknown" and write it again.
        When this process dies the renewals stop, and its jobs are reclaimed one lease later.
        """
        interval = max(0.05, self._lease.total_seconds() / 3)
        while not self._stopping.wait(interval):
            with self._held_lock:
                held = {owner: list(ids) for owner, ids in self._held.items() if ids}
            held.update(self.hand_off.queued())
            if not held:
                continue
            try:
                with self._uow_factory() as uow:
                    until = self._clock.now() + self._lease
                    for lease_owner, ids in held.items():
                        uow.jobs.extend_leases(lease_owner, ids, until=until)
                    uow.commit()
            except Exception:
                # The database is unreachable: try again at the next tick. Should the leases run
                # out meanwhile, the jobs are reclaimed as "outcome unknown"; nothing is lost.
                log.warning("sync_lease_renewal_failed", exc_info=True)
