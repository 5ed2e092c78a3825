"""The retry policy: from a failure and the attempts so far, retry at T (how) or fail with code C."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from classsync.domain import (
    ErrorCode,
    QboDisconnected,
    QboError,
    QboOutcomeUnknown,
    QboRejected,
    QboRetryable,
    QboServerError,
    QboThrottled,
    SyncStatus,
)
from classsync.sync.ports import QbIdTaken, StoreError


class CallCrashed(Exception):
    """An internal error while a QBO call was in flight: the call may have reached QBO."""


@dataclass(frozen=True, slots=True)
class Retry:
    """Hand the job back, due again after ``delay``.

    ``counts_as_attempt`` is False when the failure says nothing about the Class (a throttle, a
    parent not synced yet, a disconnected realm), so it never brings the job nearer to giving up.
    ``pause_realm_for`` (seconds) stops every call to the realm, not just this job's.
    """

    delay: timedelta
    code: str
    message: str
    counts_as_attempt: bool
    outcome_unknown: bool = False
    pause_realm_for: float | None = None


@dataclass(frozen=True, slots=True)
class Fail:
    """Finish the job as FAILED with ``code``; the realm may still pause (a last 5xx)."""

    code: str
    message: str
    pause_realm_for: float | None = None


Decision = Retry | Fail


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Every retry rule of the sync engine; pure (the randomness of the jitter is injectable)."""

    base_seconds: float = 1.0
    max_seconds: float = 300.0
    # QBO asks for a 60 s wait after a 429 that names no Retry-After;
    # docs/qbo.md, "Limits and throttling".
    throttle_seconds: float = 60.0
    max_attempts: int = 20
    # How often one job re-reads QBO after a 5010 (stale SyncToken) before it fails.
    stale_retries: int = 3
    # A child waits this long for its parent's first sync before being looked at again.
    parent_wait: timedelta = timedelta(milliseconds=200)
    # A disconnected realm is checked again this often (a person must run `classsync connect`).
    disconnected_wait: timedelta = timedelta(seconds=30)
    # Writing an outcome is retried after these pauses (a dropped or restarted database connection
    # is replaced by the pool): the outcome is known only in memory, and losing it would turn a
    # finished QBO write into an "outcome unknown" job, looked up again one lease later.
    store_write_pauses: tuple[float, ...] = (0.05, 0.25, 1.0, 2.0)

    def after_error(
        self, error: BaseException, attempts: int, rng: random.Random | None = None
    ) -> Decision:
        """What to do after ``error``, for a job that has used ``attempts`` attempts before this one.

        QBO refusals fail at once, and so does a QBO Id another row holds; a disconnected realm
        waits without counting; a throttle waits as QBO asked, uncounted, and pauses the realm;
        anything else (5xx, timeouts, unknown outcomes, expired tokens, a store or internal
        failure) is retried with backoff, counted, until ``max_attempts`` is reached. 429s and
        5xx pause the whole realm. Store and internal failures carry their own codes
        (``STORE_UNAVAILABLE``, ``INTERNAL_ERROR``): they are never reported as QBO's.
        """
        if isinstance(error, QbIdTaken):
            return Fail(ErrorCode.QB_ID_CONFLICT.value, str(error))
        qbo_error = error if isinstance(error, QboError) else _internal(error)
        code = qbo_error.error_code if isinstance(error, QboError) else _internal_code(error)
        message = str(qbo_error)
        if isinstance(qbo_error, QboRejected):
            return Fail(code, message)
        if isinstance(qbo_error, QboDisconnected):
            code = ErrorCode.QBO_DISCONNECTED.value
            return Retry(self.disconnected_wait, code, message, counts_as_attempt=False)
        throttled = isinstance(qbo_error, QboThrottled)
        attempts += 0 if throttled else 1
        delay = self.delay(max(1, attempts), qbo_error, rng)
        # QBO is struggling (429, or 5xx: its own trouble): every worker backs off the realm.
        pause = delay if isinstance(qbo_error, QboThrottled | QboServerError) else None
        if not throttled and attempts >= self.max_attempts:
            return Fail(
                ErrorCode.ATTEMPTS_EXHAUSTED.value,
                f"gave up after {attempts} attempts: {message}",
                pause_realm_for=pause,
            )
        return Retry(
            timedelta(seconds=delay),
            code,
            message,
            counts_as_attempt=not throttled,
            outcome_unknown=isinstance(qbo_error, QboOutcomeUnknown),
            pause_realm_for=pause,
        )

    def delay(self, attempt: int, error: QboError, rng: random.Random | None = None) -> float:
        """Seconds before attempt ``attempt + 1`` (``attempt`` counts from 1).

        Throttling honours Retry-After when QBO sent one; everything else is exponential with
        full jitter, capped (so replicas that failed together do not retry together).
        """
        if isinstance(error, QboThrottled):
            if error.retry_after is not None:
                return max(0.0, error.retry_after)
            return self.throttle_seconds
        ceiling = min(self.max_seconds, self.base_seconds * (2 ** max(0, attempt - 1)))
        return (rng or random).uniform(ceiling / 2, ceiling)

    def parent_not_synced(self, parent_key: str) -> Retry:
        """The parent has no QBO Id yet: look again soon, without counting an attempt."""
        message = f"waiting for parent {parent_key!r} to reach QBO"
        return Retry(self.parent_wait, SyncStatus.PENDING.value, message, counts_as_attempt=False)

    def changed_in_qbo(self) -> Retry:
        """QBO's newer version was merged into the row (conflict rule): sync the result now."""
        message = "changed in QBO since our last sync; merged, syncing the result"
        return Retry(timedelta(0), SyncStatus.PENDING.value, message, counts_as_attempt=False)

    def parent_failed(self, parent_key: str) -> Fail:
        """The parent failed for good: the child cannot be created under it."""
        message = f"parent {parent_key!r} could not be synced to QBO"
        return Fail(ErrorCode.PARENT_FAILED.value, message)

    def may_reread_stale(self, rereads: int) -> bool:
        """After a 5010, may the job re-read QBO's SyncToken once more (``rereads`` done)?"""
        return rereads < self.stale_retries


def _internal(error: BaseException) -> QboError:
    # A bug or a store failure (lost connection, deadlock victim): the QBO write may not have
    # happened, or its outcome was not recorded; retrying with backoff never loses the job.
    # Retried like a transient QBO failure (an unknown outcome after a crash mid-call).
    if isinstance(error, CallCrashed):
        return QboOutcomeUnknown(str(error))
    what = "store error" if isinstance(error, StoreError) else "internal error"
    return QboRetryable(f"{what}: {type(error).__name__}")


def _internal_code(error: BaseException) -> str:
    if isinstance(error, StoreError):
        return ErrorCode.STORE_UNAVAILABLE.value
    return ErrorCode.INTERNAL_ERROR.value
