"""Batches: several ready jobs of one realm in one QBO batch request, the rest one by one."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace

import structlog

from classsync.domain import (
    ClassWrite,
    QboClass,
    QboDuplicateName,
    QboError,
    QboStaleSyncToken,
)
from classsync.sync.job_sync import JobSync, ParentNotReady, unchanged_since_sync, write_for
from classsync.sync.limiter import RateLimiter
from classsync.sync.outcomes import Outcomes
from classsync.sync.ports import ClaimedJob, QboGateway
from classsync.sync.retry_policy import CallCrashed

log = structlog.get_logger(__name__)

# A batch waits at most this long for QBO's batch budget before its jobs go as single calls.
_BATCH_MAX_WAIT_S = 0.25

_Batchable = list[tuple[ClaimedJob, ClassWrite]]


class BatchSync:
    """Sends plain creates/updates of ready jobs in one batch; knows when batching is off."""

    def __init__(
        self,
        gateway: QboGateway,
        limiter: RateLimiter,
        job_sync: JobSync,
        outcomes: Outcomes,
        *,
        wake: Callable[[], None],
        batch_size: int,
    ) -> None:
        self._gateway = gateway
        self._limiter = limiter
        self._job_sync = job_sync
        self._outcomes = outcomes
        self._wake = wake
        self._batch_size = batch_size
        # Both per realm, as QBO's batch budget is (docs/qbo.md, "Limits and throttling"): a
        # batch booked in one company must not send every other company to single calls.
        # Until this monotonic time the realm's batch budget has no room: claim single jobs.
        self._singles_until: dict[str, float] = {}
        # One worker at a time claims a batch's worth in a realm (the realm's batch ticket): the
        # budget has room for one batch at a time, and a second worker claiming 30 would only
        # hand 29 back. realm -> the lease owner holding its ticket.
        self._ticket_lock = threading.Lock()
        self._ticket_holders: dict[str, str] = {}

    def claim_limit(self, realm_id: str, lease_owner: str) -> int:
        """How many jobs of ``realm_id`` ``lease_owner`` should claim now: a batch's worth when
        the realm's batch budget has room and no other worker is claiming one there, else one.

        The worker given a batch's worth holds the realm's batch ticket until ``claim_done``, or
        until its batch is booked, whichever comes first.
        """
        if self._batch_size <= 1:
            return 1
        with self._ticket_lock:
            if realm_id in self._ticket_holders:
                return 1
            if time.monotonic() < self._singles_until.get(realm_id, 0.0):
                return 1
            self._singles_until.pop(realm_id, None)  # past: forget it (realms come and go)
            self._ticket_holders[realm_id] = lease_owner
            return self._batch_size

    def claim_done(self, lease_owner: str) -> None:
        """``lease_owner`` is done with what it claimed: give back any batch ticket it holds."""
        with self._ticket_lock:
            self._give_back(lease_owner)

    def _give_back(self, lease_owner: str) -> None:
        held = [realm for realm, owner in self._ticket_holders.items() if owner == lease_owner]
        for realm_id in held:
            del self._ticket_holders[realm_id]

    def _next_batch_in(self, realm_id: str, lease_owner: str) -> None:
        """A batch was just booked or refused in ``realm_id``: claim singles there until its
        budget has room again."""
        wait = self._limiter.batch_wait(realm_id) - _BATCH_MAX_WAIT_S
        with self._ticket_lock:
            self._singles_until[realm_id] = time.monotonic() + max(0.0, wait)
            if self._ticket_holders.get(realm_id) == lease_owner:
                del self._ticket_holders[realm_id]

    def process(self, jobs: list[ClaimedJob], lease_owner: str) -> None:
        """Sync ``jobs`` (claimed together), a batch per realm, and record each outcome.

        Batch calls carry no requestid (docs/qbo.md, "Batch"), so a batch whose outcome is
        unknown marks every item so that its retry looks the class up by name first.
        """
        by_realm: dict[str, list[ClaimedJob]] = {}
        for job in jobs:
            by_realm.setdefault(job.realm_id, []).append(job)
        for realm_jobs in by_realm.values():
            self._process_realm(realm_jobs, lease_owner)

    def _process_realm(self, jobs: list[ClaimedJob], lease_owner: str) -> None:
        batchable = self._batchable(jobs, lease_owner)
        if not batchable:
            return
        if len(batchable) == 1:
            self._job_sync.process(batchable[0][0], lease_owner)
            return
        realm_id = batchable[0][0].realm_id
        slot = self._limiter.try_batch_call(realm_id, max_wait=_BATCH_MAX_WAIT_S)
        self._next_batch_in(realm_id, lease_owner)
        if slot is None:
            self._send_singly(batchable, lease_owner)
            return
        try:
            with slot:
                results = self._gateway.batch_write(realm_id, [write for _, write in batchable])
        except QboError as error:
            for job, _ in batchable:
                self._outcomes.errored(job, lease_owner, error)
            return
        except Exception as error:
            log.exception("sync_batch_crashed")
            crashed = CallCrashed(f"internal error during a batch call: {type(error).__name__}")
            for job, _ in batchable:
                self._outcomes.errored(job, lease_owner, crashed)
            return
        self._record_results(batchable, results, lease_owner)

    def _batchable(self, jobs: list[ClaimedJob], lease_owner: str) -> _Batchable:
        """The jobs that can go in a batch, with their writes; the others are handled here."""
        batchable: _Batchable = []
        for job in jobs:
            try:
                parent_id = self._job_sync.parent_id(job)
            except ParentNotReady as waiting:
                self._outcomes.decided(job, lease_owner, waiting.decision)
                continue
            except Exception as error:
                log.exception("sync_parent_lookup_failed")
                self._outcomes.errored(job, lease_owner, error)
                continue
            if job.outcome_unknown:
                self._job_sync.process(job, lease_owner)  # looks the Class up by name first
                continue
            write = write_for(job, parent_id)
            unchanged = unchanged_since_sync(job, write)
            if unchanged is not None:
                self._outcomes.synced(job, lease_owner, unchanged)
                continue
            snap = job.snapshot
            if snap.qb_id is not None:
                write = replace(write, qbo_id=snap.qb_id, sync_token=str(snap.version_token))
            else:
                write = replace(write, sparse=False)
            batchable.append((job, write))
        return batchable

    def _send_singly(self, batchable: _Batchable, lease_owner: str) -> None:
        """The realm's batch budget is spent for now: send one single call and hand the rest
        back, so idle siblings send them as single calls in parallel (they claim one job at a
        time until the budget has room again)."""
        first, rest = batchable[0][0], [job for job, _ in batchable[1:]]
        self._outcomes.release(lease_owner, [job.class_id for job in rest])
        for _ in rest:
            self._wake()
        self._job_sync.process(first, lease_owner)

    def _record_results(
        self, batchable: _Batchable, results: list[QboClass | QboError], lease_owner: str
    ) -> None:
        """The items QBO wrote are recorded together in one transaction, first (their callers
        wait); the others one by one."""
        synced = [
            (job, result)
            for (job, _), result in zip(batchable, results, strict=True)
            if isinstance(result, QboClass)
        ]
        self._outcomes.synced_many(synced, lease_owner)
        for (job, _), result in zip(batchable, results, strict=True):
            if isinstance(result, QboStaleSyncToken | QboDuplicateName):
                self._job_sync.process(job, lease_owner)  # the single path recovers from these
            elif not isinstance(result, QboClass):
                self._outcomes.errored(job, lease_owner, result)
