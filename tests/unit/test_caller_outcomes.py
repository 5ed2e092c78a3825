"""One mapping from a job's state to what a caller is told, for ingest and for reads alike."""

from __future__ import annotations

import pytest

from classsync.domain import ClassOutcome, ErrorCode, SyncStatus
from classsync.sync.caller_outcomes import with_job_state
from classsync.sync.ports import JobState

pytestmark = pytest.mark.unit

_BASE = ClassOutcome(
    stream_index=3, request_index=1, status=SyncStatus.PENDING, name="A", full_name="P:A", id="c1"
)


def _state(status: str, *, qb_id: str | None = None, code: str | None = None) -> JobState:
    return JobState(
        class_id="c1",
        status=status,
        generation=1,
        qb_id=qb_id,
        version_token=4,
        error_code=code,
        error_message=None if code is None else f"{code} happened",
    )


@pytest.mark.parametrize("timed_out", [True, False])
def test_synced_carries_the_qbo_link_and_no_error(timed_out: bool) -> None:
    state = _state("SYNCED", qb_id="42", code="STALE")  # an old retry's error is not shown
    outcome = with_job_state(_BASE, state, unsettled_is_timed_out=timed_out)
    assert (outcome.status, outcome.qb_id, outcome.sync_token) == (SyncStatus.SYNCED, "42", "4")
    assert (outcome.error_code, outcome.error_message) == ("", "")
    assert (outcome.stream_index, outcome.request_index, outcome.id) == (3, 1, "c1")
    assert (outcome.name, outcome.full_name) == ("A", "P:A")


def test_a_job_in_progress_is_pending_with_its_last_retrys_error() -> None:
    outcome = with_job_state(
        _BASE, _state("IN_PROGRESS", code="THROTTLED"), unsettled_is_timed_out=True
    )
    assert (outcome.status, outcome.error_code) == (SyncStatus.PENDING, "THROTTLED")
    assert (outcome.qb_id, outcome.sync_token) == ("", "")


def test_an_unsettled_job_without_error_timed_out_only_for_a_caller_who_waited() -> None:
    waited = with_job_state(_BASE, _state("PENDING"), unsettled_is_timed_out=True)
    assert (waited.status, waited.error_code) == (SyncStatus.PENDING, ErrorCode.TIMED_OUT.value)
    assert waited.error_message
    read = with_job_state(_BASE, _state("PENDING"), unsettled_is_timed_out=False)
    assert (read.status, read.error_code, read.error_message) == (SyncStatus.PENDING, "", "")


def test_failed_keeps_its_error() -> None:
    outcome = with_job_state(_BASE, _state("FAILED", code="REJECTED"), unsettled_is_timed_out=True)
    assert (outcome.status, outcome.error_code) == (SyncStatus.FAILED, "REJECTED")
    assert outcome.error_message == "REJECTED happened"


def test_no_state_read_is_plain_pending() -> None:
    outcome = with_job_state(_BASE, None, unsettled_is_timed_out=True)
    assert (outcome.status, outcome.error_code, outcome.qb_id) == (SyncStatus.PENDING, "", "")
    assert outcome.id == "c1"
