"""Apply Classes read back from QBO (CDC, full re-read, webhook) to the local rows."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import structlog

from classsync.domain import LocalClass, QboClass, RemoteClass, qbo_path
from classsync.sync.conflicts import ConflictCounter, decide, is_news, remote_key, sync_token_number
from classsync.sync.remote_ports import ConflictRecorder, RemoteUnitOfWork

log = structlog.get_logger(__name__)

# Two appliers (the CDC poller and the webhook worker, or two replicas) may add the same
# QBO-created Class at once; the loser's transaction hits the unique index and runs again,
# finding the row the winner wrote.
_APPLY_ATTEMPTS = 3


def utcnow() -> datetime:
    """Naive UTC, as the database stores it."""
    return datetime.now(UTC).replace(tzinfo=None)


def _in_order(classes: Sequence[RemoteClass | QboClass]) -> list[QboClass]:
    """One entry per QBO Id (its newest SyncToken), oldest change first, parents before children.

    QBO reports changes in the order they happened (CDC sorts by LastUpdatedTime), so a rename
    away from a name is applied before another Class takes that name.
    """
    newest: dict[str, tuple[datetime, QboClass]] = {}
    for item in classes:
        qbo, when = (item.qbo, item.last_updated) if isinstance(item, RemoteClass) else (item, None)
        stamp = when or datetime.min
        held = newest.get(qbo.id)
        if held is None or sync_token_number(qbo.sync_token) > sync_token_number(
            held[1].sync_token
        ):
            newest[qbo.id] = (stamp, qbo)
    ordered = sorted(
        newest.values(),
        key=lambda pair: (pair[0], len(qbo_path(pair[1].fully_qualified_name)), pair[1].id),
    )
    return [qbo for _, qbo in ordered]


class RemoteChangeApplier:
    """Brings local rows in line with what QBO reported, under the conflict rule (sync.conflicts)."""

    def __init__(
        self,
        uow_factory: Callable[[], RemoteUnitOfWork],
        recorder: ConflictRecorder | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._uow_factory = uow_factory
        self._recorder = recorder or ConflictCounter()
        self.conflicts = self._recorder  # where the counts can be read (metrics)
        self._clock = clock

    def apply(
        self,
        realm_id: str,
        classes: Sequence[RemoteClass | QboClass],
        *,
        cdc_mark: datetime | None = None,
        processed_events: Sequence[str] = (),
    ) -> int:
        """Apply ``classes`` in one transaction with the CDC mark and inbox updates they settle.

        Returns how many rows changed. A Class whose SyncToken the row already holds is skipped,
        so the same change reported twice (webhook and CDC, or a redelivery) is applied once.
        """
        ordered = _in_order(classes)
        for attempt in range(1, _APPLY_ATTEMPTS + 1):
            try:
                return self._apply_once(realm_id, ordered, cdc_mark, processed_events)
            except Exception:
                if attempt == _APPLY_ATTEMPTS:
                    raise
                log.info("remote_changes_retried", realm_id=realm_id, attempt=attempt)
                time.sleep(0.05 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _apply_once(
        self,
        realm_id: str,
        ordered: list[QboClass],
        cdc_mark: datetime | None,
        processed_events: Sequence[str],
    ) -> int:
        applied = 0
        with self._uow_factory() as uow:
            now = self._clock()
            by_qb_id, by_key = uow.changes.local_classes(
                realm_id, [c.id for c in ordered], [remote_key(c) for c in ordered]
            )
            for remote in ordered:
                key = remote_key(remote).casefold()  # stored identity keys are case-folded
                local = by_qb_id.get(remote.id) or _unlinked(by_key.get(key))
                if not is_news(local, remote):
                    continue
                change, conflicts = decide(realm_id, local, remote)
                for conflict in conflicts:
                    # Never silent: the caller's value QBO's edit superseded is logged and counted.
                    log.warning(
                        "conflict_caller_change_superseded",
                        realm_id=realm_id,
                        qb_id=remote.id,
                        class_id=local.class_id if local else None,
                        field=conflict.field,
                        caller_value=conflict.caller_value,
                        qbo_value=conflict.qbo_value,
                    )
                    self._recorder.conflict_decided(realm_id, "qbo", conflict.field)
                if uow.changes.apply(change, now):
                    applied += 1
                    # One line per Class at debug: a first full read may import thousands.
                    log.debug(
                        "remote_change_applied",
                        realm_id=realm_id,
                        qb_id=remote.id,
                        sync_token=remote.sync_token,
                        full_name=change.key,
                        active=change.values.active,
                        created=local is None,
                    )
            if cdc_mark is not None:
                uow.changes.set_cdc_mark(realm_id, cdc_mark, now)
            if processed_events:
                uow.inbox.mark_processed(processed_events, now)
            uow.commit()
        if applied:
            log.info("remote_changes_applied", realm_id=realm_id, applied=applied)
        return applied


def _unlinked(local: LocalClass | None) -> LocalClass | None:
    """A row found by full name only counts when it is not linked to another QBO Class."""
    return local if local is not None and local.qb_id is None else None
