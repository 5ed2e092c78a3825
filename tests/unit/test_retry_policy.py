"""The retry policy as pure functions: from an error and the attempts so far, retry or fail."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from classsync.domain import (
    QboAuthExpired,
    QboDisconnected,
    QboDuplicateName,
    QboError,
    QboInvalidReference,
    QboOutcomeUnknown,
    QboRejected,
    QboRetryable,
    QboServerError,
    QboStaleSyncToken,
    QboThrottled,
)
from classsync.sync.ports import LinkedClass, QbIdTaken, StoreConflict, StoreUnavailable
from classsync.sync.retry_policy import CallCrashed, Fail, Retry, RetryPolicy

pytestmark = pytest.mark.unit


def _retry(decision: Retry | Fail) -> Retry:
    assert isinstance(decision, Retry), decision
    return decision


def _fail(decision: Retry | Fail) -> Fail:
    assert isinstance(decision, Fail), decision
    return decision


class TestDelay:
    def test_throttle_honours_retry_after(self) -> None:
        assert RetryPolicy().delay(1, QboThrottled("429", retry_after=7)) == 7

    def test_throttle_without_retry_after_waits_what_qbo_advises(self) -> None:
        assert RetryPolicy(throttle_seconds=60).delay(3, QboThrottled("429")) == 60

    def test_exponential_with_jitter_and_cap(self) -> None:
        policy = RetryPolicy(base_seconds=1, max_seconds=8)
        rng = random.Random(1)
        for attempt in range(1, 7):
            ceiling = min(8, 2 ** (attempt - 1))
            assert ceiling / 2 <= policy.delay(attempt, QboRetryable("x"), rng) <= ceiling


@pytest.mark.parametrize(
    "error",
    [
        QboRejected("bad", code="2020"),
        QboInvalidReference("no parent", code="2500"),
        QboDuplicateName("taken", code="6240"),
        QboStaleSyncToken("stale", code="5010"),
    ],
)
def test_a_refusal_fails_at_once_with_qbos_code(error: QboRejected) -> None:
    decision = _fail(RetryPolicy().after_error(error, attempts=0))
    assert decision.code == f"QBO_{error.code}"
    assert decision.pause_realm_for is None


@pytest.mark.parametrize(
    "error",
    [
        QboRetryable("connection refused"),
        QboOutcomeUnknown("timed out after sending"),
        QboAuthExpired("401 after a refresh", code="401"),
        QboError("invalid_client"),
        QboServerError("503", status=503),
    ],
)
def test_transient_failures_are_retried_with_backoff_and_counted(error: QboError) -> None:
    policy = RetryPolicy(base_seconds=4, max_seconds=100)
    decision = _retry(policy.after_error(error, attempts=2, rng=random.Random(3)))
    assert decision.counts_as_attempt
    # Third attempt: the ceiling is 4 * 2**2 = 16 s, with full jitter down to half.
    assert timedelta(seconds=8) <= decision.delay <= timedelta(seconds=16)
    assert decision.code == error.error_code
    assert decision.outcome_unknown is isinstance(error, QboOutcomeUnknown)


def test_a_throttle_is_not_an_attempt_and_pauses_the_realm_as_long_as_qbo_asked() -> None:
    decision = _retry(
        RetryPolicy(max_attempts=3).after_error(QboThrottled("429", retry_after=7), 5)
    )
    assert not decision.counts_as_attempt
    assert decision.delay == timedelta(seconds=7)
    assert decision.pause_realm_for == 7
    assert decision.code == "QBO_3001"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_every_5xx_pauses_the_realm_for_the_backoff(status: int) -> None:
    decision = _retry(RetryPolicy().after_error(QboServerError("5xx", status=status), 0))
    assert decision.delay > timedelta(0)
    assert decision.pause_realm_for == pytest.approx(decision.delay.total_seconds(), abs=1e-6)


def test_a_plain_retryable_error_does_not_pause_the_realm() -> None:
    decision = _retry(RetryPolicy().after_error(QboRetryable("connection reset"), 0))
    assert decision.pause_realm_for is None


def test_a_disconnected_realm_waits_uncounted_until_someone_reconnects_it() -> None:
    policy = RetryPolicy(disconnected_wait=timedelta(seconds=30), max_attempts=1)
    decision = _retry(policy.after_error(QboDisconnected("invalid_grant"), attempts=99))
    assert decision == Retry(
        timedelta(seconds=30), "QBO_DISCONNECTED", "invalid_grant", counts_as_attempt=False
    )


def test_the_last_attempt_fails_as_exhausted_but_still_pauses_the_realm_on_a_5xx() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert isinstance(policy.after_error(QboServerError("503", status=503), 1), Retry)
    decision = _fail(policy.after_error(QboServerError("503", status=503), 2))
    assert decision.code == "ATTEMPTS_EXHAUSTED"
    assert decision.message == "gave up after 3 attempts: 503"
    assert decision.pause_realm_for is not None


def test_throttles_never_exhaust_the_attempts() -> None:
    decision = RetryPolicy(max_attempts=3).after_error(QboThrottled("429"), attempts=50)
    assert isinstance(decision, Retry)


def test_a_store_or_internal_failure_is_retried_under_its_own_code_never_qbos() -> None:
    cases = [
        (StoreUnavailable("connection lost"), "STORE_UNAVAILABLE", "store error"),
        (StoreConflict("duplicate key"), "STORE_UNAVAILABLE", "store error"),
        (RuntimeError("bug"), "INTERNAL_ERROR", "internal error"),
    ]
    for error, code, what in cases:
        decision = _retry(RetryPolicy().after_error(error, attempts=0))
        assert decision.counts_as_attempt
        assert decision.code == code
        assert decision.message == f"{what}: {type(error).__name__}"
        assert not decision.outcome_unknown


def test_a_crash_during_a_qbo_call_is_internal_with_an_unknown_outcome() -> None:
    decision = _retry(RetryPolicy().after_error(CallCrashed("crash in a batch"), attempts=0))
    assert (decision.code, decision.outcome_unknown) == ("INTERNAL_ERROR", True)


def test_a_qbo_id_held_by_another_row_fails_at_once_naming_that_row() -> None:
    taken = QbIdTaken("77", LinkedClass(class_id="row-9", full_name="Company:Sales"))
    decision = RetryPolicy().after_error(taken, attempts=0)
    assert isinstance(decision, Fail)
    assert decision.code == "QB_ID_CONFLICT"
    assert "row-9" in decision.message
    assert "'Company:Sales'" in decision.message
    assert "Id 77" in decision.message


def test_a_child_waits_uncounted_for_its_parent_and_fails_when_the_parent_failed() -> None:
    policy = RetryPolicy(parent_wait=timedelta(milliseconds=200))
    waiting = policy.parent_not_synced("A")
    assert (waiting.delay, waiting.counts_as_attempt) == (timedelta(milliseconds=200), False)
    assert waiting.code == "PENDING"
    assert policy.parent_failed("A").code == "PARENT_FAILED"


def test_stale_sync_token_rereads_are_bounded() -> None:
    policy = RetryPolicy(stale_retries=2)
    assert [policy.may_reread_stale(n) for n in range(4)] == [True, True, False, False]
