"""Push: webhook events from QBO stored in an inbox first, then read back from QBO and applied."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime

import structlog

from classsync.domain import QboClass, QboNotFound, QboRejected, WebhookNotice
from classsync.sync.limiter import RateLimiter
from classsync.sync.remote_changes import RemoteChangeApplier, utcnow
from classsync.sync.remote_ports import QboChangeFeed, RemoteUnitOfWork
from classsync.sync.worker_thread import WorkerThread

log = structlog.get_logger(__name__)

# Events taken from the inbox per round; a failed round is tried again after the pause.
_BATCH = 100
_RETRY_PAUSE_S = 2.0
CLASS_ENTITY = "class"


class WebhookIntake:
    """What the webhook endpoint calls: store the events durably, then wake the worker."""

    def __init__(
        self,
        uow_factory: Callable[[], RemoteUnitOfWork],
        wake: Callable[[], None],
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._uow_factory = uow_factory
        self._wake = wake
        self._clock = clock

    def accept(self, notices: Sequence[WebhookNotice]) -> int:
        """Store the events (a redelivered event id changes nothing); how many were new."""
        if not notices:
            return 0
        with self._uow_factory() as uow:
            added = uow.inbox.add(notices, self._clock())
            uow.commit()
        log.info("webhook_events_stored", received=len(notices), new=added)
        if added:
            self._wake()
        return added


class WebhookWorker:
    """One thread that reads each notified Class from QBO and applies it (inbox order)."""

    def __init__(
        self,
        feed: QboChangeFeed,
        applier: RemoteChangeApplier,
        uow_factory: Callable[[], RemoteUnitOfWork],
        limiter: RateLimiter,
        realms: Callable[[], Sequence[str]],
        *,
        poll_seconds: float = 5.0,
        clock: Callable[[], datetime] = utcnow,
        unreadable: Callable[[], None] = lambda: None,
    ) -> None:
        self._unreadable = unreadable
        self._feed = feed
        self._applier = applier
        self._uow_factory = uow_factory
        self._limiter = limiter
        self._realms = realms
        self._poll_seconds = poll_seconds
        self._clock = clock
        self._worker = WorkerThread("qbo-webhook-worker", self._run)

    def wake(self) -> None:
        """New events were stored."""
        self._worker.wake()

    def start(self) -> None:
        """Start the worker; events left from before a stop are processed at once."""
        self._worker.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the round in flight (bounded by ``timeout``); what is left stays stored."""
        self._worker.stop(timeout)

    def _run(self) -> None:
        while not self._worker.stopping:
            try:
                done = self.process_due()
            except Exception:
                log.warning("webhook_round_failed", exc_info=True)
                self._worker.sleep(_RETRY_PAUSE_S)  # wakes do not cut a failure's pause short
                continue
            if done < _BATCH:
                self._worker.wait_for_wake(self._poll_seconds)

    def process_due(self) -> int:
        """One round: every due event, grouped per realm and Class; how many events were settled."""
        with self._uow_factory() as uow:
            due = uow.inbox.due(_BATCH, self._clock())
        served = set(self._realms())
        ignored = [n.event_id for n in due if not _wanted(n, served)]
        if ignored:
            self._settle(ignored)
        groups: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for notice in due:
            if _wanted(notice, served):
                groups[notice.realm_id][notice.entity_id].append(notice.event_id)
        settled = len(ignored)
        for realm_id, by_entity in groups.items():
            settled += self._process_realm(realm_id, by_entity)
        return settled

    def _process_realm(self, realm_id: str, by_entity: dict[str, list[str]]) -> int:
        fetched: list[QboClass] = []
        event_ids: list[str] = []
        for qbo_id, ids in by_entity.items():
            try:
                with self._limiter.call(realm_id):
                    fetched.append(self._feed.read(realm_id, qbo_id))
            except (QboNotFound, QboRejected) as error:
                # QBO answers 610 for an unknown, and possibly an inactive, Id (docs/qbo.md,
                # "Errors"): CDC reports inactive Classes too, so ask it now instead.
                self._unreadable()
                log.info(
                    "webhook_entity_unreadable", realm_id=realm_id, qb_id=qbo_id, error=str(error)
                )
            except Exception as error:
                log.warning(
                    "webhook_read_failed", realm_id=realm_id, qb_id=qbo_id, error=str(error)
                )
                self._fail(ids, str(error))
                continue
            event_ids += ids
        self._applier.apply(realm_id, fetched, processed_events=event_ids)
        return len(event_ids)

    def _settle(self, event_ids: Sequence[str]) -> None:
        with self._uow_factory() as uow:
            uow.inbox.mark_processed(event_ids, self._clock())
            uow.commit()

    def _fail(self, event_ids: Sequence[str], error: str) -> None:
        with self._uow_factory() as uow:
            uow.inbox.mark_failed(event_ids, error, self._clock())
            uow.commit()


def _wanted(notice: WebhookNotice, served: set[str]) -> bool:
    """Class events of a realm this service syncs; others are settled without a QBO call."""
    return notice.entity_name.lower() == CLASS_ENTITY and notice.realm_id in served
