"""Ingest: validate Classes, store rows and sync jobs in one transaction, then wait for QBO."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from classsync.domain import (
    ClassInput,
    ClassOutcome,
    ErrorCode,
    RealmNotConnected,
    Rejection,
    RequestTooLarge,
    SyncStatus,
    ValidClass,
    validate,
)
from classsync.sync.caller_outcomes import is_settled, with_job_state
from classsync.sync.clock import SystemClock
from classsync.sync.hand_off import HandOff
from classsync.sync.ports import (
    Clock,
    JobState,
    JobStatus,
    OneClassStore,
    RealmDirectory,
    StoreConflict,
    StoredClass,
    StoreUnavailable,
    UnitOfWork,
)
from classsync.sync.remote_ports import ConflictRecorder
from classsync.sync.settled import SettledBoard

log = structlog.get_logger(__name__)

# Two streams adding the same new Class at once: the loser's transaction hits the unique index and
# is simply run again (it then finds the row and updates it).
_STORE_ATTEMPTS = 3
_POLL_OTHER_REPLICAS_S = 1.0


@dataclass(frozen=True, slots=True)
class Accepted:
    """A Class committed locally; its QBO sync is the engine's job now."""

    stream_index: int
    request_index: int
    class_id: str
    generation: int
    name: str
    full_name: str
    # The job's state as stored, when the store told it (the one-statement path): answering
    # needs no look-up then.
    state: JobState | None = None


class IngestService:
    """The application service behind CreateClass. Knows nothing about gRPC."""

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        board: SettledBoard,
        wake_engine: Callable[[str], None],
        *,
        realm_id: str,
        max_classes_per_request: int,
        realms: RealmDirectory | None = None,
        clock: Clock | None = None,
        conflicts: ConflictRecorder | None = None,
        one_class: OneClassStore | None = None,
        hand_off: HandOff | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._one_class = one_class
        self._hand_off = hand_off
        self._conflicts = conflicts
        self._clock = clock or SystemClock()
        self._board = board
        self._wake_engine = wake_engine
        self._default_realm_id = realm_id
        self._realms = realms
        self._max_classes = max_classes_per_request

    @property
    def default_realm_id(self) -> str:
        """The realm of a call that names none (QBO_REALM_ID): every Node caller's."""
        return self._default_realm_id

    def check_realm(self, realm_id: str) -> None:
        """Refuse (``RealmNotConnected``) a realm other than the default that is not connected.

        The default realm is always accepted, connected or not, as it was before calls could
        name a realm: its Classes are stored and wait for a connection. Any other realm must have
        been connected first, so a typo in the metadata never queues Classes nobody will sync.
        """
        if realm_id == self._default_realm_id:
            return
        # One primary-key read per call (not cached), so `classsync realm remove` takes effect
        # at once in every replica.
        if self._realms is not None and self._realms.is_connected(realm_id):
            return
        msg = (
            f"QBO realm {realm_id} is not connected to classsync, so nothing was stored: connect "
            f"it with `classsync realm add {realm_id} --refresh-token TOKEN` or "
            f"`classsync connect --realm {realm_id}`, then send again"
        )
        raise RealmNotConnected(msg)

    def ingest(
        self,
        items: Sequence[ClassInput],
        *,
        first_stream_index: int,
        request_number: int,
        realm_id: str | None = None,
    ) -> list[Accepted | ClassOutcome]:
        """Validate and durably store one ClassRequest; returns, per Class, Accepted or its refusal.

        ``realm_id`` is the call's realm (checked by ``check_realm`` first); default QBO_REALM_ID.
        """
        realm_id = realm_id or self._default_realm_id
        if len(items) > self._max_classes:
            msg = (
                f"ClassRequest #{request_number} carries {len(items)} Classes; at most "
                f"{self._max_classes} are accepted per ClassRequest (split it into several "
                "ClassRequests on the same stream). Earlier ClassRequests were stored."
            )
            raise RequestTooLarge(msg)
        if not items:
            return [
                ClassOutcome(
                    stream_index=-1,
                    request_index=-1,
                    status=SyncStatus.INVALID,
                    error_code=ErrorCode.EMPTY_REQUEST.value,
                    error_message=f"ClassRequest #{request_number} carries no Classes",
                )
            ]
        checked = [validate(item) for item in items]
        valid = [c for c in checked if isinstance(c, ValidClass)]
        if len(checked) == 1 and len(valid) == 1:
            one = self._store_one(valid[0], realm_id)
            if one is not None:
                return [_accepted_one(items[0], one, first_stream_index)]
        stored = self._store(valid, realm_id) if valid else []
        self._report_overwrites(stored, realm_id)
        stored_iter = iter(stored)
        results = [
            _result(
                item,
                next(stored_iter) if isinstance(check, ValidClass) else check,
                first_stream_index + offset,
                offset,
            )
            for offset, (item, check) in enumerate(zip(items, checked, strict=True))
        ]
        if stored:
            self._wake_engine(realm_id)
        return results

    def _report_overwrites(self, stored: Sequence[StoredClass | Rejection], realm_id: str) -> None:
        """A resend that undoes a change made in QBO wins (it is the caller's newest word), but
        never silently: each such field is logged and counted (docs/architecture.md)."""
        for item in stored:
            if isinstance(item, StoredClass) and item.overwrites_qbo_edit:
                log.warning(
                    "qbo_change_overwritten",
                    class_id=item.class_id,
                    realm_id=realm_id,
                    fields=list(item.overwrites_qbo_edit),
                )
                for field in item.overwrites_qbo_edit:
                    if self._conflicts is not None:
                        self._conflicts.conflict_decided(realm_id, "caller", field)

    def _store_one(self, item: ValidClass, realm_id: str) -> StoredClass | None:
        """The hot path: one new top-level Class in one round trip, its job straight to this
        process's engine when a worker is free (docs/performance.md, "c. overhead").

        None when it does not apply (the Class matches a row, has a parent or a QBO Id; no
        one-statement store for this database): the general path then stores it.
        """
        if self._one_class is None or item.qb_id is not None or item.parent_path:
            return None
        lease = self._hand_off.reserve(realm_id) if self._hand_off is not None else None
        stored: StoredClass | None = None
        try:
            stored = self._one_class.store_new(item, realm_id, self._clock.now(), lease)
        except StoreUnavailable:
            log.info("ingest_one_statement_failed", exc_info=True)  # the general path retries
        finally:
            if lease is not None and self._hand_off is not None:
                if stored is not None and stored.claimed is not None:
                    self._hand_off.hand_over(lease, stored.claimed)
                else:
                    self._hand_off.cancel(realm_id)
        if stored is not None and lease is None:
            self._wake_engine(realm_id)
        return stored

    def _store(self, valid: list[ValidClass], realm_id: str) -> list[StoredClass | Rejection]:
        for attempt in range(1, _STORE_ATTEMPTS + 1):
            try:
                with self._uow_factory() as uow:
                    stored = uow.classes.save_batch(valid, realm_id, self._clock.now())
                    uow.commit()
                    return stored
            except (StoreConflict, StoreUnavailable) as error:
                # Unique-index race with a concurrent stream, or a deadlock/serialisation retry.
                if attempt == _STORE_ATTEMPTS:
                    raise
                log.info("ingest_retried", attempt=attempt, error=type(error).__name__)
        raise AssertionError("unreachable")  # pragma: no cover

    def settle(
        self,
        accepted: Sequence[Accepted],
        *,
        timeout: float,
        is_active: Callable[[], bool] = lambda: True,
    ) -> list[ClassOutcome]:
        """Wait (at most ``timeout`` s) until QBO has the Classes, and report each one.

        Jobs synced by this process are reported the moment they settle; the database is polled
        for jobs another replica holds. Whatever is unfinished at the deadline is PENDING: it is
        stored and will still sync.
        """
        wanted = {a.class_id for a in accepted}
        # States the store reported with the Classes: nothing to look up for them.
        states = {a.class_id: a.state for a in accepted if a.state is not None}
        known = len(states) == len(accepted)
        if timeout <= 0 or not wanted:
            # Answer as soon as stored (x-classsync-wait-seconds: 0): one look at the states,
            # not the subscribe / poll / final-poll cycle, which costs two more queries.
            polled = self._poll(wanted) if wanted and not known else states
            return [_outcome(a, polled.get(a.class_id)) for a in accepted]
        ticket = self._board.subscribe(wanted, since={a.class_id: a.generation for a in accepted})
        try:
            deadline = time.monotonic() + timeout
            # Just stored: a first look would only find them pending (another replica is looked
            # for at the usual interval).
            next_poll = time.monotonic() + _POLL_OTHER_REPLICAS_S if known else 0.0
            while wanted and is_active():
                now = time.monotonic()
                if now >= next_poll:
                    polled = self._poll(wanted)
                    states.update(polled)
                    wanted -= {cid for cid, s in polled.items() if is_settled(s)}
                    next_poll = now + _POLL_OTHER_REPLICAS_S
                remaining = deadline - time.monotonic()
                if not wanted or remaining <= 0:
                    break
                arrived = self._board.take(ticket, min(remaining, _POLL_OTHER_REPLICAS_S))
                states.update(arrived)
                wanted -= set(arrived)
            if wanted:
                states.update(self._poll(wanted))
        finally:
            self._board.unsubscribe(ticket)
        return [_outcome(a, states.get(a.class_id)) for a in accepted]

    def _poll(self, class_ids: set[str]) -> dict[str, JobState]:
        # Reporting is best effort: the Classes are committed already. A connection lost here
        # (database restart, killed backend) is retried once on a fresh one; failing that, the
        # Classes are answered PENDING rather than failing a call whose work is done.
        for attempt in (1, 2):
            try:
                with self._uow_factory() as uow:
                    return uow.jobs.states(sorted(class_ids))
            except StoreUnavailable:
                log.warning("sync_state_lookup_failed", attempt=attempt, exc_info=True)
        return {}


def _result(
    item: ClassInput, outcome: StoredClass | Rejection, index: int, offset: int
) -> Accepted | ClassOutcome:
    """One Class's answer to ingest: stored (Accepted), or why it was refused."""
    if isinstance(outcome, Rejection):
        return ClassOutcome(
            stream_index=index,
            request_index=offset,
            status=SyncStatus.INVALID,
            name=item.name,
            full_name=item.full_name,
            error_code=str(outcome.code),
            error_message=outcome.message,
        )
    return _accepted(item, outcome, index, offset)


def _accepted(
    item: ClassInput, stored: StoredClass, index: int, offset: int, state: JobState | None = None
) -> Accepted:
    return Accepted(
        stream_index=index,
        request_index=offset,
        class_id=stored.class_id,
        generation=stored.generation,
        name=item.name,
        full_name=item.full_name,
        state=state,
    )


def _accepted_one(item: ClassInput, stored: StoredClass, stream_index: int) -> Accepted:
    """The one-statement path's answer to ingest, with the job's state as written."""
    status = JobStatus.PENDING if stored.claimed is None else JobStatus.IN_PROGRESS
    state = JobState(
        class_id=stored.class_id,
        status=status.value,
        generation=stored.generation,
        qb_id=None,
        version_token=0,
        error_code=None,
        error_message=None,
    )
    return _accepted(item, stored, stream_index, 0, state)


def _outcome(accepted: Accepted, state: JobState | None) -> ClassOutcome:
    base = ClassOutcome(
        stream_index=accepted.stream_index,
        request_index=accepted.request_index,
        status=SyncStatus.PENDING,
        name=accepted.name,
        full_name=accepted.full_name,
        id=accepted.class_id,
    )
    # The caller waited for QBO: a job still pending at the deadline has timed out.
    return with_job_state(base, state, unsettled_is_timed_out=True)
