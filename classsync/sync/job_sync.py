"""One job's sync: wait for the parent, create or update in QBO, recover from 5010, 6240 and unknowns."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import TypeVar

import structlog

from classsync.domain import (
    ClassWrite,
    QboClass,
    QboDuplicateName,
    QboError,
    QboStaleSyncToken,
    SideValues,
    SyncStatus,
)
from classsync.sync.conflicts import FIELDS, remote_values
from classsync.sync.limiter import RateLimiter
from classsync.sync.outcomes import Outcomes
from classsync.sync.ports import (
    ClaimedJob,
    Clock,
    QbIdTaken,
    QboGateway,
    StoreConflict,
    UnitOfWork,
)
from classsync.sync.remote_ports import ConflictRecorder
from classsync.sync.retry_policy import Decision, RetryPolicy

log = structlog.get_logger(__name__)
_T = TypeVar("_T")


def request_id_for(job: ClaimedJob, operation: str, sync_token: str = "") -> str:
    """Deterministic QBO ``requestid`` for one write of one job generation.

    The same write retried after an unknown outcome carries the same id, so QBO answers with the
    first response instead of writing twice; a different write (new SyncToken, new generation)
    gets a new id. 40 hex characters, under QBO's 50; docs/qbo.md, "requestid and duplicates".
    """
    seed = f"{job.class_id}:{job.generation}:{operation}:{sync_token}"
    return hashlib.sha1(seed.encode(), usedforsecurity=False).hexdigest()


class ParentNotReady(Exception):
    """The job cannot be written before its parent: what to do with it instead."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.message)
        self.decision = decision


class ChangedInQbo(ParentNotReady):
    """QBO changed the Class since our last sync; its version was merged into the row first."""


class JobSync:
    """Brings one leased job's Class to QBO and records the outcome.

    ``remote_changed`` applies a Class QBO changed since our last sync to the local row under the
    conflict rule (``sync.remote_changes``); ``conflicts`` counts QBO-side edits overwritten.
    """

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        gateway: QboGateway,
        limiter: RateLimiter,
        policy: RetryPolicy,
        outcomes: Outcomes,
        clock: Clock,
        *,
        remote_changed: Callable[[str, QboClass], int] | None = None,
        conflicts: ConflictRecorder | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._gateway = gateway
        self._limiter = limiter
        self._policy = policy
        self._outcomes = outcomes
        self._clock = clock
        self._remote_changed = remote_changed
        self._conflicts = conflicts

    def process(self, job: ClaimedJob, lease_owner: str) -> None:
        """Sync ``job`` and record what happened; raises only if recording success/waits failed."""
        bound = structlog.contextvars.bound_contextvars(
            class_id=job.class_id, realm_id=job.realm_id, generation=job.generation
        )
        with bound:
            try:
                parent_id = self.parent_id(job)
                result = self._sync(job, parent_id)
            except ParentNotReady as waiting:
                self._outcomes.decided(job, lease_owner, waiting.decision)
            except (QboError, QbIdTaken) as error:
                self._outcomes.errored(job, lease_owner, error)
            except Exception as error:  # a bug or a database fault: retry, never lose the job
                log.exception("sync_job_crashed")
                self._outcomes.errored(job, lease_owner, error)
            else:
                self._outcomes.synced(job, lease_owner, result)

    def parent_id(self, job: ClaimedJob) -> str | None:
        """The parent's QBO Id (None at top level); raises ParentNotReady while it has none."""
        parent_key = job.snapshot.parent_key
        if parent_key is None:
            return None
        if job.parent is not None:
            qb_id, status = job.parent  # read when the job was claimed
        else:
            with self._uow_factory() as uow:
                qb_id, status = uow.jobs.parent_state(job.realm_id, parent_key)
        if qb_id:
            return qb_id
        if status == SyncStatus.FAILED.value:
            raise ParentNotReady(self._policy.parent_failed(parent_key))
        raise ParentNotReady(self._policy.parent_not_synced(parent_key))

    def _sync(self, job: ClaimedJob, parent_id: str | None) -> QboClass:
        snap = job.snapshot
        write = write_for(job, parent_id)
        if snap.qb_id is not None:
            unchanged = unchanged_since_sync(job, write)
            if unchanged is not None:
                return unchanged
            return self._update(job, snap.qb_id, str(snap.version_token), write)
        existing = None
        if job.outcome_unknown:
            # An earlier create may have reached QBO: look before creating again.
            existing = self._call(
                job, lambda: self._gateway.find_by_name(job.realm_id, snap.qbo_full_name)
            )
        if existing is None:
            create = replace(write, request_id=request_id_for(job, "create"), sparse=False)
            try:
                return self._call(job, lambda: self._gateway.create(job.realm_id, create))
            except QboDuplicateName:
                existing = self._call(
                    job, lambda: self._gateway.find_by_name(job.realm_id, snap.qbo_full_name)
                )
                if existing is None:
                    raise
        # Link the QBO class that already carries this name, then apply our fields to it.
        self._link(job, existing)
        if matches(existing, write):
            return existing
        return self._update(job, existing.id, existing.sync_token, write)

    def _update(self, job: ClaimedJob, qbo_id: str, sync_token: str, write: ClassWrite) -> QboClass:
        """Update with the newest SyncToken; a 5010 re-reads QBO and tries again (bounded)."""
        rereads = 0
        while True:
            update = replace(
                write,
                qbo_id=qbo_id,
                sync_token=sync_token,
                request_id=request_id_for(job, "update", sync_token),
            )
            try:
                return self._call(job, partial(self._gateway.update, job.realm_id, update))
            except QboStaleSyncToken:
                if not self._policy.may_reread_stale(rereads):
                    raise
            rereads += 1
            current = self._call(job, lambda: self._gateway.read(job.realm_id, qbo_id))
            log.info("qbo_sync_token_refreshed", stale=sync_token, current=current.sync_token)
            sync_token = current.sync_token
            if matches(current, write):
                return current
            self._before_overwriting(job, current, write)

    def _before_overwriting(self, job: ClaimedJob, current: QboClass, write: ClassWrite) -> None:
        """QBO holds something else than we would write: never overwrite a QBO-side edit silently.

        With the base known, fields QBO changed since our last sync are merged into the row under
        the conflict rule and the job syncs the result; without one (a row synced before the base
        was kept), the caller's version is written and every field it overwrites is reported.
        """
        base = job.snapshot.base
        changed_in_qbo = base is not None and base != remote_values(current)
        # Applied (0 when the row could not take it, e.g. its new name is held locally by another
        # row): sync the merged row; otherwise fall through rather than loop.
        if changed_in_qbo and self._remote_changed and self._remote_changed(job.realm_id, current):
            raise ChangedInQbo(self._policy.changed_in_qbo())
        theirs = remote_values(current)
        ours = SideValues(write.name, write.parent_id or None, write.active)
        for field in FIELDS:
            qbo_value, caller_value = getattr(theirs, field), getattr(ours, field)
            if base is not None and getattr(base, field) == qbo_value:
                continue  # not changed in QBO: the caller's change is simply written
            if qbo_value != caller_value:
                log.warning(
                    "qbo_change_overwritten",
                    qb_id=current.id,
                    field=field,
                    qbo_value=qbo_value,
                    caller_value=caller_value,
                )
                if self._conflicts is not None:
                    self._conflicts.conflict_decided(job.realm_id, "caller", field)

    def _call(self, job: ClaimedJob, call: Callable[[], _T]) -> _T:
        with self._limiter.call(job.realm_id):
            return call()

    def _link(self, job: ClaimedJob, existing: QboClass) -> None:
        """Link the row to ``existing``; raises QbIdTaken when another row holds that Id."""
        try:
            with self._uow_factory() as uow:
                uow.jobs.record_link(job, existing, self._clock.now())
                uow.commit()
        except StoreConflict:
            taken = self._outcomes.qb_id_taken(job, existing.id)
            if taken is None:
                raise
            raise taken from None
        log.info("qbo_class_linked_by_name", qb_id=existing.id)


def write_for(job: ClaimedJob, parent_id: str | None) -> ClassWrite:
    """The fields of the job's Class as QBO takes them (no Id, SyncToken or requestid yet)."""
    snap = job.snapshot
    return ClassWrite(
        name=snap.name, active=snap.is_active, parent_id=parent_id, sparse=snap.is_sparse
    )


def unchanged_since_sync(job: ClaimedJob, write: ClassWrite) -> QboClass | None:
    """The Class as QBO held it at our last sync, when the write would change nothing of it.

    Writing anyway would only bump QBO's SyncToken, and would undo any change made in QBO since
    (which the conflict rule keeps): nothing is sent.
    """
    snap = job.snapshot
    if snap.qb_id is None or snap.base is None:
        return None
    if snap.base != SideValues(write.name, write.parent_id or None, write.active):
        return None
    log.info("qbo_write_skipped_unchanged", qb_id=snap.qb_id)
    return QboClass(
        id=snap.qb_id,
        sync_token=str(snap.version_token),
        name=snap.name,
        fully_qualified_name=snap.full_name or snap.key,
        active=snap.is_active,
        parent_id=write.parent_id,
    )


def matches(current: QboClass, write: ClassWrite) -> bool:
    """QBO already holds what we would write (skip a needless update and SyncToken bump)."""
    return (
        current.name == write.name
        and current.active == write.active
        and (current.parent_id or None) == (write.parent_id or None)
    )
