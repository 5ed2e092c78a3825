"""Sync engine: worker threads that lease due jobs and bring each Class to QBO exactly once."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import structlog

from classsync.domain import (
    ClassWrite,
    ErrorCode,
    QboClass,
    QboDisconnected,
    QboDuplicateName,
    QboError,
    QboOutcomeUnknown,
    QboRejected,
    QboRetryable,
    QboStaleSyncToken,
    QboThrottled,
    SyncStatus,
)
from classsync.sync.backoff import RetryPolicy
from classsync.sync.limiter import RateLimiter
from classsync.sync.ports import ClaimedJob, JobState, QboGateway, UnitOfWork
from classsync.sync.settled import SettledBoard

log = structlog.get_logger(__name__)
_T = TypeVar("_T")

# A batch waits at most this long for QBO's batch budget before its jobs go as single calls.
_BATCH_MAX_WAIT_S = 0.25
# A child waits this long for its parent's first sync before being looked at again.
_PARENT_WAIT = timedelta(milliseconds=200)
# A disconnected realm is checked again this often (a person must run `classsync connect`).
_DISCONNECTED_WAIT = timedelta(seconds=30)
# Writing an outcome is retried after these pauses (a dropped or restarted database connection
# is replaced by the pool): the outcome is known only in memory, and losing it would turn a
# finished QBO write into an "outcome unknown" job, looked up again one lease later.
_RECORD_RETRY_PAUSES = (0.05, 0.25, 1.0, 2.0)


def utcnow() -> datetime:
    """Naive UTC, as the database stores it."""
    return datetime.now(UTC).replace(tzinfo=None)


def request_id_for(job: ClaimedJob, operation: str, sync_token: str = "") -> str:
    """Deterministic QBO ``requestid`` for one write of one job generation.

    The same write retried after an unknown outcome carries the same id, so QBO answers with the
    first response instead of writing twice; a different write (new SyncToken, new generation)
    gets a new id. 40 hex characters, under QBO's 50 (qbo-reference.md §3).
    """
    seed = f"{job.class_id}:{job.generation}:{operation}:{sync_token}"
    return hashlib.sha1(seed.encode(), usedforsecurity=False).hexdigest()


class _Doorbell:
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
        with self._condition:
            self._rings = min(self._cap, self._rings + 1)
            self._condition.notify()

    def ring_all(self) -> None:
        with self._condition:
            self._rings = self._cap
            self._condition.notify_all()

    def wait(self, timeout: float) -> None:
        with self._condition:
            if not self._rings:
                self._condition.wait(timeout)
            if self._rings:
                self._rings -= 1


class _Defer(Exception):
    def __init__(self, wait: timedelta, code: str, message: str) -> None:
        super().__init__(message)
        self.wait = wait
        self.code = code


class _Fail(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class SyncEngine:
    """Leases jobs, calls QBO through the limiter, records outcomes, schedules retries."""

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        gateway: QboGateway,
        limiter: RateLimiter,
        policy: RetryPolicy,
        board: SettledBoard,
        *,
        workers: int = 10,
        lease_seconds: float = 60.0,
        poll_seconds: float = 1.0,
        stale_retries: int = 3,
        batch_size: int = 1,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._uow_factory = uow_factory
        self._gateway = gateway
        self._limiter = limiter
        self._policy = policy
        self._board = board
        self._workers = workers
        self._lease = timedelta(seconds=lease_seconds)
        self._poll_seconds = poll_seconds
        self._stale_retries = stale_retries
        self._batch_size = batch_size
        self._clock = clock
        self.owner = f"{uuid.uuid4().hex[:12]}"
        self._bell = _Doorbell(cap=workers)
        self._singles_until = 0.0  # monotonic time until which batches are off (budget spent)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        # Each worker leases under its own name, so a sibling can never take a job over as if it
        # were its own; the lease keeper renews what every worker still holds.
        self._local = threading.local()
        self._worker_owners: list[str] = []
        self._held: dict[str, list[str]] = {}
        self._held_lock = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker threads."""
        self._stopping.clear()
        self._worker_owners = [f"{self.owner}-{index}" for index in range(self._workers)]
        for index, owner in enumerate(self._worker_owners):
            thread = threading.Thread(
                target=self._run, args=(owner,), name=f"sync-worker-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        keeper = threading.Thread(target=self._keep_leases, name="sync-lease-keeper", daemon=True)
        keeper.start()
        self._threads.append(keeper)
        log.info("sync_engine_started", workers=self._workers, owner=self.owner)

    def wake(self) -> None:
        """New work was committed: look for it now rather than at the next poll."""
        self._bell.ring()

    def stop(self, timeout: float = 20.0) -> None:
        """Finish in-flight QBO calls (bounded by ``timeout``), then hand back leases."""
        self._stopping.set()
        self._bell.ring_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()
        try:
            with self._uow_factory() as uow:
                now = self._clock()
                released = sum(
                    uow.jobs.release(owner, now) for owner in [self.owner, *self._worker_owners]
                )
                uow.commit()
            log.info("sync_engine_stopped", leases_released=released)
        except Exception:
            # Not fatal: leases expire by themselves and another worker reclaims them.
            log.exception("sync_engine_release_failed")

    # --- worker loop -------------------------------------------------------------------------
    @property
    def _owner(self) -> str:
        """The lease owner of the calling worker thread."""
        return getattr(self._local, "owner", self.owner)

    def _run(self, owner: str) -> None:
        self._local.owner = owner
        while not self._stopping.is_set():
            try:
                jobs = self._claim()
            except Exception:
                log.exception("sync_claim_failed")
                self._stopping.wait(self._poll_seconds)
                continue
            if not jobs:
                self._bell.wait(self._poll_seconds)
                continue
            self._bell.ring()  # there may be more: let one idle sibling look too
            with self._held_lock:
                self._held[owner] = [job.class_id for job in jobs]
            try:
                if len(jobs) > 1:
                    self._process_batch(jobs)
                else:
                    self._process(jobs[0])
            except Exception:
                # Recording an outcome failed (database gone, deadlock victim...). The leases
                # expire and the jobs are reclaimed as "outcome unknown": nothing is lost, and
                # the thread must live on.
                log.exception("sync_jobs_unrecorded", jobs=len(jobs))
                with self._held_lock:
                    self._held.pop(owner, None)  # let the leases run out
                self._stopping.wait(self._poll_seconds)
            finally:
                with self._held_lock:
                    self._held.pop(owner, None)

    def _claim(self) -> list[ClaimedJob]:
        if not self._limiter.has_share:
            return []  # other replicas hold every QBO slot of the realm for now
        with self._uow_factory() as uow:
            limit = self._batch_size if time.monotonic() >= self._singles_until else 1
            jobs = uow.jobs.claim(
                owner=self._owner, limit=limit, lease=self._lease, now=self._clock()
            )
            uow.commit()
            return jobs

    def _keep_leases(self) -> None:
        """Renew the leases of jobs still being worked on, every third of the lease.

        A worker may hold a job longer than the lease: waiting for a QBO slot behind a 60 s
        throttle pause (qbo-reference.md §4), or in a slow call. Were its lease to run out,
        another worker would reclaim the job as "outcome unknown" and write it again. When this
        process dies the renewals stop, and its jobs are reclaimed one lease later.
        """
        interval = max(0.05, self._lease.total_seconds() / 3)
        while not self._stopping.wait(interval):
            with self._held_lock:
                held = {owner: list(ids) for owner, ids in self._held.items() if ids}
            if not held:
                continue
            try:
                with self._uow_factory() as uow:
                    until = self._clock() + self._lease
                    for owner, ids in held.items():
                        uow.jobs.extend_leases(owner, ids, until=until)
                    uow.commit()
            except Exception:
                # The database is unreachable: try again at the next tick. Should the leases run
                # out meanwhile, the jobs are reclaimed as "outcome unknown"; nothing is lost.
                log.warning("sync_lease_renewal_failed", exc_info=True)

    # --- one job -----------------------------------------------------------------------------
    def _process(self, job: ClaimedJob) -> None:
        bound = structlog.contextvars.bound_contextvars(
            class_id=job.class_id, realm_id=job.realm_id, generation=job.generation
        )
        with bound:
            try:
                parent_id = self._parent_id(job)
                result = self._sync(job, parent_id)
            except _Defer as deferral:
                self._retry(job, deferral.wait, deferral.code, str(deferral), count=False)
            except _Fail as failure:
                self._fail(job, failure.code, str(failure))
            except QboError as error:
                self._handle_error(job, error)
            except Exception as error:  # a bug or a database fault: retry, never lose the job
                log.exception("sync_job_crashed")
                self._handle_error(job, QboRetryable(f"internal error: {type(error).__name__}"))
            else:
                self._succeed(job, result)

    def _parent_id(self, job: ClaimedJob) -> str | None:
        parent_key = job.snapshot.parent_key
        if parent_key is None:
            return None
        if job.parent is not None:
            qb_id, status = job.parent  # read when the job was claimed
        else:
            with self._uow_factory() as uow:
                qb_id, status = uow.jobs.parent_state(parent_key)
        if qb_id:
            return qb_id
        if status == SyncStatus.FAILED.value:
            msg = f"parent {parent_key!r} could not be synced to QBO"
            raise _Fail(ErrorCode.PARENT_FAILED.value, msg)
        msg = f"waiting for parent {parent_key!r} to reach QBO"
        raise _Defer(_PARENT_WAIT, SyncStatus.PENDING.value, msg)

    def _write(self, job: ClaimedJob, parent_id: str | None) -> ClassWrite:
        snap = job.snapshot
        return ClassWrite(
            name=snap.name, active=snap.is_active, parent_id=parent_id, sparse=snap.is_sparse
        )

    def _sync(self, job: ClaimedJob, parent_id: str | None) -> QboClass:
        snap = job.snapshot
        write = self._write(job, parent_id)
        if snap.qb_id is not None:
            return self._update(job, snap.qb_id, str(snap.version_token), write)
        existing = None
        if job.outcome_unknown:
            # An earlier create may have reached QBO: look before creating again (issue 4 §2).
            existing = self._call(job, lambda: self._gateway.find_by_name(job.realm_id, snap.key))
        if existing is None:
            create = _replace(write, request_id=request_id_for(job, "create"), sparse=False)
            try:
                return self._call(job, lambda: self._gateway.create(job.realm_id, create))
            except QboDuplicateName:
                existing = self._call(
                    job, lambda: self._gateway.find_by_name(job.realm_id, snap.key)
                )
                if existing is None:
                    raise
        # Link the QBO class that already carries this name, then apply our fields to it.
        self._link(job, existing)
        if _matches(existing, write):
            return existing
        return self._update(job, existing.id, existing.sync_token, write)

    def _update(self, job: ClaimedJob, qbo_id: str, sync_token: str, write: ClassWrite) -> QboClass:
        """Update with the newest SyncToken; a 5010 re-reads QBO and tries again (bounded)."""
        for attempt in range(self._stale_retries + 1):
            update = _replace(
                write,
                qbo_id=qbo_id,
                sync_token=sync_token,
                request_id=request_id_for(job, "update", sync_token),
            )
            try:
                return self._call(job, lambda u=update: self._gateway.update(job.realm_id, u))  # type: ignore[misc]
            except QboStaleSyncToken:
                if attempt == self._stale_retries:
                    raise
                current = self._call(job, lambda: self._gateway.read(job.realm_id, qbo_id))
                log.info("qbo_sync_token_refreshed", stale=sync_token, current=current.sync_token)
                sync_token = current.sync_token
                if _matches(current, write):
                    return current
        raise AssertionError("unreachable")  # pragma: no cover

    def _call(self, job: ClaimedJob, call: Callable[[], _T]) -> _T:
        with self._limiter.call(job.realm_id):
            return call()

    def _link(self, job: ClaimedJob, existing: QboClass) -> None:
        with self._uow_factory() as uow:
            uow.jobs.record_link(job, existing, self._clock())
            uow.commit()
        log.info("qbo_class_linked_by_name", qb_id=existing.id)

    # --- batches -------------------------------------------------------------------------------
    def _process_batch(self, jobs: list[ClaimedJob]) -> None:
        """Send plain creates/updates of top-ready jobs in one QBO batch; the rest one by one.

        Batch calls carry no requestid (qbo-reference.md §3), so a batch whose outcome is
        unknown marks every item so that its retry looks the class up by name first.
        """
        batchable: list[tuple[ClaimedJob, ClassWrite]] = []
        for job in jobs:
            try:
                parent_id = self._parent_id(job)
            except _Defer as deferral:
                self._retry(job, deferral.wait, deferral.code, str(deferral), count=False)
                continue
            except _Fail as failure:
                self._fail(job, failure.code, str(failure))
                continue
            except Exception:
                log.exception("sync_parent_lookup_failed")
                self._handle_error(job, QboRetryable("internal error looking up the parent"))
                continue
            if job.outcome_unknown:
                self._process(job)
                continue
            write = self._write(job, parent_id)
            snap = job.snapshot
            if snap.qb_id is not None:
                write = _replace(write, qbo_id=snap.qb_id, sync_token=str(snap.version_token))
            else:
                write = _replace(write, sparse=False)
            batchable.append((job, write))
        if not batchable:
            return
        if len(batchable) == 1:
            self._process(batchable[0][0])
            return
        realm_id = batchable[0][0].realm_id
        slot = self._limiter.try_batch_call(realm_id, max_wait=_BATCH_MAX_WAIT_S)
        if slot is None:
            # The realm's batch budget is spent for now: send one single call and hand the rest
            # back, so idle siblings send them as single calls in parallel; claim one job at a
            # time until the budget has room again.
            self._singles_until = time.monotonic() + _BATCH_MAX_WAIT_S * 4
            first, rest = batchable[0][0], [job for job, _ in batchable[1:]]
            owner, now = self._owner, self._clock()
            self._record(lambda uow: uow.jobs.release_jobs(owner, [j.class_id for j in rest], now))
            for _ in rest:
                self._bell.ring()
            self._process(first)
            return
        try:
            with slot:
                results = self._gateway.batch_write(realm_id, [write for _, write in batchable])
        except QboError as error:
            for job, _ in batchable:
                self._handle_error(job, error)
            return
        except Exception:
            log.exception("sync_batch_crashed")
            for job, _ in batchable:
                self._handle_error(job, QboOutcomeUnknown("internal error during a batch call"))
            return
        for (job, _), result in zip(batchable, results, strict=True):
            if isinstance(result, QboClass):
                self._succeed(job, result)
            elif isinstance(result, QboStaleSyncToken | QboDuplicateName):
                self._process(job)  # the single path knows how to recover from these
            else:
                self._handle_error(job, result)

    # --- outcomes ------------------------------------------------------------------------------
    def _record(self, write: Callable[[UnitOfWork], _T]) -> _T:
        """Run ``write`` in its own transaction, retrying a few times if the database fails.

        Every outcome write is idempotent: once one commit went through, the job no longer
        carries our lease and a repeat changes nothing.
        """
        for pause in (*_RECORD_RETRY_PAUSES, None):
            try:
                with self._uow_factory() as uow:
                    value = write(uow)
                    uow.commit()
                    return value
            except Exception:
                if pause is None or self._stopping.is_set():
                    raise
                log.warning("sync_outcome_write_retried", exc_info=True)
                time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def _succeed(self, job: ClaimedJob, result: QboClass) -> None:
        owner, now = self._owner, self._clock()
        state = self._record(lambda uow: uow.jobs.record_synced(job, owner, result, now))
        log.info(
            "class_synced",
            qb_id=result.id,
            sync_token=result.sync_token,
            finished=state is not None,
        )
        if state is not None and _is_settled(state):
            self._board.post([state])  # what was just written: no read-back

    def _fail(self, job: ClaimedJob, code: str, message: str) -> None:
        owner, now = self._owner, self._clock()
        self._record(
            lambda uow: uow.jobs.record_failed(
                job, owner, error_code=code, error_message=message, now=now
            )
        )
        log.warning("class_sync_failed", error_code=code, error=message)
        self._publish(job)

    def _retry(
        self,
        job: ClaimedJob,
        wait: timedelta,
        code: str,
        message: str,
        *,
        count: bool,
        unknown: bool = False,
    ) -> None:
        owner, now = self._owner, self._clock()
        self._record(
            lambda uow: uow.jobs.retry_later(
                job,
                owner,
                at=now + wait,
                error_code=code,
                error_message=message,
                count_attempt=count,
                outcome_unknown=unknown,
                now=now,
            )
        )
        if wait.total_seconds() < self._poll_seconds:
            # Due again before the next poll (a child waiting for its parent): look again then.
            timer = threading.Timer(wait.total_seconds(), self._bell.ring)
            timer.daemon = True
            timer.start()

    def _handle_error(self, job: ClaimedJob, error: QboError) -> None:
        try:
            self._record_error(job, error)
        except Exception:
            # The database is unreachable: the lease will expire and the job will be reclaimed
            # (as "outcome unknown"), so nothing is lost.
            log.exception("sync_record_failed")

    def _record_error(self, job: ClaimedJob, error: QboError) -> None:
        message = str(error)
        if isinstance(error, QboRejected):
            self._fail(job, error.error_code, message)
            return
        if isinstance(error, QboDisconnected):
            self._retry(
                job, _DISCONNECTED_WAIT, ErrorCode.QBO_DISCONNECTED.value, message, count=False
            )
            return
        throttled = isinstance(error, QboThrottled)
        attempts = job.attempts + (0 if throttled else 1)
        delay = self._policy.delay(max(1, attempts), error)
        if throttled or error.code in {"503", "500"}:
            self._limiter.pause(job.realm_id, delay)
        if not throttled and self._policy.exhausted(attempts):
            self._fail(
                job,
                ErrorCode.ATTEMPTS_EXHAUSTED.value,
                f"gave up after {attempts} attempts: {message}",
            )
            return
        log.info(
            "class_sync_retry_scheduled",
            error_code=error.error_code,
            error=message,
            delay_s=round(delay, 3),
            attempts=attempts,
        )
        self._retry(
            job,
            timedelta(seconds=delay),
            error.error_code,
            message,
            count=not throttled,
            unknown=isinstance(error, QboOutcomeUnknown),
        )

    def _publish(self, job: ClaimedJob) -> None:
        try:
            with self._uow_factory() as uow:
                states = uow.jobs.states([job.class_id])
        except Exception:
            # The outcome is stored; waiting callers also poll the database, so they still see it.
            log.warning("sync_publish_failed", exc_info=True)
            return
        settled = [s for s in states.values() if _is_settled(s)]
        if settled:
            self._board.post(settled)


def _is_settled(state: JobState) -> bool:
    return state.status in (SyncStatus.SYNCED.value, SyncStatus.FAILED.value)


def _matches(current: QboClass, write: ClassWrite) -> bool:
    """QBO already holds what we would write (skip a needless update and SyncToken bump)."""
    return (
        current.name == write.name
        and current.active == write.active
        and (current.parent_id or None) == (write.parent_id or None)
    )


def _replace(write: ClassWrite, **changes: object) -> ClassWrite:
    return replace(write, **changes)  # type: ignore[arg-type]
