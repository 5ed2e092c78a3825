"""A Class's job state as a caller sees it: the one mapping from ``JobState`` to ``ClassOutcome``."""

from __future__ import annotations

from dataclasses import replace

from classsync.domain import ClassOutcome, ErrorCode, SyncStatus
from classsync.sync.ports import JobState, JobStatus

_TIMED_OUT_MESSAGE = "not synced to QBO yet; it is stored and will sync"


def is_settled(state: JobState) -> bool:
    """True when the job will not move without a caller: SYNCED or FAILED."""
    return state.status in (JobStatus.SYNCED.value, JobStatus.FAILED.value)


def with_job_state(
    base: ClassOutcome, state: JobState | None, *, unsettled_is_timed_out: bool
) -> ClassOutcome:
    """``base`` (which Class, at which place of the stream) with its job's state.

    IN_PROGRESS is the queue's own business: callers see PENDING, with the last retry's error.
    ``unsettled_is_timed_out``: the caller waited for QBO (ingest), so a job still pending with
    no error of its own is reported ``TIMED_OUT``; a read only reports what is there. With no
    state at all (it could not be read) the Class is PENDING and nothing more is known.
    """
    if state is None:
        return replace(base, status=SyncStatus.PENDING)
    status = SyncStatus(state.status) if is_settled(state) else SyncStatus.PENDING
    code, message = state.error_code or "", state.error_message or ""
    if status is SyncStatus.SYNCED:
        code = message = ""
    elif status is SyncStatus.PENDING and not code and unsettled_is_timed_out:
        code, message = ErrorCode.TIMED_OUT.value, _TIMED_OUT_MESSAGE
    return replace(
        base,
        status=status,
        qb_id=state.qb_id or "",
        sync_token=str(state.version_token) if state.qb_id else "",
        error_code=code,
        error_message=message,
    )
