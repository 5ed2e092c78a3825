"""Records what happened to a leased job (synced, retry later, failed) and tells waiting callers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

import structlog

from classsync.domain import QboClass, SyncStatus
from classsync.sync.limiter import RateLimiter
from classsync.sync.ports import (
    ClaimedJob,
    Clock,
    JobState,
    OneStatementOutcome,
    QbIdTaken,
    StoreConflict,
    UnitOfWork,
)
from classsync.sync.retry_policy import Decision, Fail, Retry, RetryPolicy
from classsync.sync.settled import SettledBoard

log = structlog.get_logger(__name__)
_T = TypeVar("_T")


class Outcomes:
    """Writes each outcome in its own short transaction, under the worker's lease."""

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        limiter: RateLimiter,
        policy: RetryPolicy,
        board: SettledBoard,
        clock: Clock,
        *,
        wake: Callable[[str], None],
        poll_seconds: float,
        is_stopping: Callable[[], bool],
        one_statement: OneStatementOutcome | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._one_statement = one_statement
        self._limiter = limiter
        self._policy = policy
        self._board = board
        self._clock = clock
        self._wake = wake
        self._poll_seconds = poll_seconds
        self._is_stopping = is_stopping

    def synced(self, job: ClaimedJob, lease_owner: str, result: QboClass) -> None:
        """QBO holds the Class: store its Id and SyncToken and finish the job (if still ours).

        If another row already holds QBO's Id, the job fails with ``QB_ID_CONFLICT`` naming
        that row: storing the link can never pass, so retrying would loop for ever.
        """
        now = self._clock.now()
        try:
            state = self._record_synced(job, lease_owner, result, now)
        except StoreConflict:
            taken = self.qb_id_taken(job, result.id)
            if taken is None:
                raise
            self.errored(job, lease_owner, taken)
            return
        if state is not None and is_settled(state):
            # What was just written: no read-back. Before the log line: the caller waits.
            self._board.post([state])
        log.info(
            "class_synced",
            qb_id=result.id,
            sync_token=result.sync_token,
            finished=state is not None,
        )

    def synced_many(self, synced: Sequence[tuple[ClaimedJob, QboClass]], lease_owner: str) -> None:
        """``synced`` for a batch's jobs, in one transaction.

        A job the store left out (an ingest held its row) is recorded alone, as is every job
        when one of QBO's Ids is another row's: ``synced`` then finds which one and fails it
        with ``QB_ID_CONFLICT`` while the others are stored.
        """
        if not synced:
            return
        now = self._clock.now()
        try:
            states = self._record(lambda uow: uow.jobs.record_synced_many(synced, lease_owner, now))
        except StoreConflict:
            states = {}
        for job, result in synced:
            if job.class_id not in states:
                self.synced(job, lease_owner, result)
                continue
            state = states[job.class_id]
            log.info(
                "class_synced",
                qb_id=result.id,
                sync_token=result.sync_token,
                finished=state is not None,
            )
        settled = [s for s in states.values() if s is not None and is_settled(s)]
        if settled:
            self._board.post(settled)  # what was just written: no read-back

    def errored(self, job: ClaimedJob, lease_owner: str, error: BaseException) -> None:
        """Apply the retry policy to ``error``; a store failure here is left to the lease."""
        decision = self._policy.after_error(error, job.attempts)
        if decision.pause_realm_for is not None:
            self._limiter.pause(job.realm_id, decision.pause_realm_for)
        if isinstance(decision, Retry):
            log.info(
                "class_sync_retry_scheduled",
                error_code=decision.code,
                error=decision.message,
                delay_s=round(decision.delay.total_seconds(), 3),
                attempts=job.attempts + int(decision.counts_as_attempt),
            )
        try:
            self.decided(job, lease_owner, decision)
        except Exception:
            # The database is unreachable: the lease will expire and the job will be reclaimed
            # (as "outcome unknown"), so nothing is lost.
            log.exception("sync_record_failed")

    def decided(self, job: ClaimedJob, lease_owner: str, decision: Decision) -> None:
        """Hand the job back for later, or finish it as FAILED."""
        if isinstance(decision, Fail):
            self._fail(job, lease_owner, decision)
        else:
            self._retry(job, lease_owner, decision)

    def qb_id_taken(self, job: ClaimedJob, qb_id: str) -> QbIdTaken | None:
        """After a conflict storing ``qb_id`` on ``job``'s row: the row that holds it, if any."""
        with self._uow_factory() as uow:
            holder = uow.jobs.qb_id_holder(qb_id, other_than=job.class_id)
        if holder is None:
            return None  # a race that has passed (the holder moved on): retrying may pass
        return QbIdTaken(qb_id, holder)

    def release(self, lease_owner: str, class_ids: Sequence[str]) -> None:
        """Hand jobs back untouched, due now (for idle siblings to take)."""
        now = self._clock.now()
        self._record(lambda uow: uow.jobs.release_jobs(lease_owner, class_ids, now))

    def _fail(self, job: ClaimedJob, lease_owner: str, decision: Fail) -> None:
        now = self._clock.now()
        self._record(
            lambda uow: uow.jobs.record_failed(
                job, lease_owner, error_code=decision.code, error_message=decision.message, now=now
            )
        )
        log.warning("class_sync_failed", error_code=decision.code, error=decision.message)
        self._publish(job)

    def _retry(self, job: ClaimedJob, lease_owner: str, decision: Retry) -> None:
        now = self._clock.now()
        self._record(
            lambda uow: uow.jobs.retry_later(
                job,
                lease_owner,
                at=now + decision.delay,
                error_code=decision.code,
                error_message=decision.message,
                count_attempt=decision.counts_as_attempt,
                outcome_unknown=decision.outcome_unknown,
                now=now,
            )
        )
        wait = decision.delay.total_seconds()
        if wait < self._poll_seconds:
            # Due again before the next poll (a child waiting for its parent): look again then.
            timer = threading.Timer(wait, self._wake, args=(job.realm_id,))
            timer.daemon = True
            timer.start()

    def _record_synced(
        self, job: ClaimedJob, lease_owner: str, result: QboClass, now: datetime
    ) -> JobState | None:
        """One round trip where the store has one (docs/performance.md, "c. overhead")."""
        one = self._one_statement
        if one is None:
            return self._record(lambda uow: uow.jobs.record_synced(job, lease_owner, result, now))
        return self._retrying(lambda: one.record_synced(job, lease_owner, result, now))

    def _record(self, write: Callable[[UnitOfWork], _T]) -> _T:
        """Run ``write`` in its own transaction, retrying a few times if the database fails."""

        def in_transaction() -> _T:
            with self._uow_factory() as uow:
                value = write(uow)
                uow.commit()
                return value

        return self._retrying(in_transaction)

    def _retrying(self, write: Callable[[], _T]) -> _T:
        """Run ``write``, again after a pause if the database fails (a few times).

        Every outcome write is idempotent: once one commit went through, the job no longer
        carries our lease and a repeat changes nothing.
        """
        for pause in (*self._policy.store_write_pauses, None):
            try:
                return write()
            except StoreConflict:
                raise  # a unique key refused the write: the same write cannot pass again
            except Exception:
                if pause is None or self._is_stopping():
                    raise
                log.warning("sync_outcome_write_retried", exc_info=True)
                time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def _publish(self, job: ClaimedJob) -> None:
        try:
            with self._uow_factory() as uow:
                states = uow.jobs.states([job.class_id])
        except Exception:
            # The outcome is stored; waiting callers also poll the database, so they still see it.
            log.warning("sync_publish_failed", exc_info=True)
            return
        settled = [s for s in states.values() if is_settled(s)]
        if settled:
            self._board.post(settled)


def is_settled(state: JobState) -> bool:
    """SYNCED or FAILED: nothing more will happen to this version of the Class."""
    return state.status in (SyncStatus.SYNCED.value, SyncStatus.FAILED.value)
