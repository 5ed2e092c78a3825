"""Pull: poll QBO's change data capture per realm and apply what changed there (CDC poller)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from classsync.domain import ChangePage, QboError
from classsync.sync.limiter import RateLimiter
from classsync.sync.remote_changes import RemoteChangeApplier, utcnow
from classsync.sync.remote_ports import QboChangeFeed, RemoteUnitOfWork
from classsync.sync.worker_thread import WorkerThread

log = structlog.get_logger(__name__)

# QBO's CDC looks back at most 30 days and answers at most 1,000 objects (docs/qbo.md, "CDC and
# webhooks"). A mark closer than a day to the limit is read in full instead: clocks differ, and
# a poll that is refused for being too old would leave the realm stuck.
CDC_LOOKBACK = timedelta(days=30)
CDC_LOOKBACK_MARGIN = timedelta(days=1)
CDC_MAX_OBJECTS = 1000
# Pages of a full re-read (QBO's largest MAXRESULTS).
QUERY_PAGE_SIZE = 1000
# A failed poll is tried again sooner than the interval.
_RETRY_AFTER_FAILURE_S = 10.0


@dataclass(frozen=True, slots=True)
class NextWindow:
    """What to ask QBO next: CDC since ``changed_since``, or a full re-read when it is None."""

    changed_since: datetime | None


def first_window(mark: datetime | None, now: datetime, *, lookback: timedelta) -> NextWindow:
    """No mark, or one older than QBO looks back: read everything; else CDC from the mark."""
    if mark is None or mark < now - (lookback - CDC_LOOKBACK_MARGIN):
        return NextWindow(None)
    return NextWindow(mark.replace(microsecond=0))


def after_page(asked: datetime, page: ChangePage, *, max_objects: int) -> tuple[datetime, bool]:
    """The mark to store after one CDC answer, and whether to ask again at once.

    A full answer may have been cut (QBO keeps the oldest changes): the next ``changedSince`` is
    the newest LastUpdatedTime received (inclusive, so that second's Classes come again and
    their SyncToken shows them applied). Otherwise QBO's answer ``time`` covers everything.
    """
    if max_objects and len(page.classes) >= max_objects:
        stamps = [c.last_updated for c in page.classes if c.last_updated is not None]
        newest = max(stamps, default=asked)
        return newest, True
    return page.answered_at, False


class CdcPoller:
    """One thread polling every realm each ``interval`` seconds; catches up at start."""

    def __init__(
        self,
        feed: QboChangeFeed,
        applier: RemoteChangeApplier,
        uow_factory: Callable[[], RemoteUnitOfWork],
        limiter: RateLimiter,
        realms: Callable[[], Sequence[str]],
        *,
        interval_seconds: float,
        lookback: timedelta = CDC_LOOKBACK,
        max_objects: int = CDC_MAX_OBJECTS,
        page_size: int = QUERY_PAGE_SIZE,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._feed = feed
        self._applier = applier
        self._uow_factory = uow_factory
        self._limiter = limiter
        self._realms = realms
        self._interval = interval_seconds
        self._lookback = lookback
        self._max_objects = max_objects
        self._page_size = page_size
        self._clock = clock
        self._worker = WorkerThread("qbo-cdc-poller", self._run)

    def start(self) -> None:
        """Start polling (the first round runs at once: catch-up after a stop)."""
        self._worker.start()
        log.info("cdc_poller_started", interval_s=self._interval)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the QBO call in flight (bounded by ``timeout``)."""
        self._worker.stop(timeout)

    def poll_soon(self) -> None:
        """Run a round now rather than at the next interval."""
        self._worker.wake()

    def _run(self) -> None:
        while not self._worker.stopping:
            failed = False
            for realm_id in self._realms():
                if self._worker.stopping:
                    return
                try:
                    self.poll(realm_id)
                except Exception as error:  # QBO or the database failed: the mark did not move
                    failed = True
                    log.warning(
                        "cdc_poll_failed",
                        realm_id=realm_id,
                        error=str(error),
                        error_type=type(error).__name__,
                    )
            wait = min(self._interval, _RETRY_AFTER_FAILURE_S) if failed else self._interval
            self._worker.wait_for_wake(wait)

    def poll(self, realm_id: str) -> int:
        """Bring one realm up to date; returns how many local rows changed."""
        with self._uow_factory() as uow:
            mark = uow.changes.cdc_mark(realm_id)
        window = first_window(mark, self._clock(), lookback=self._lookback)
        if window.changed_since is None:
            return self._read_all(realm_id, reason="no mark" if mark is None else "mark too old")
        since = window.changed_since
        applied = 0
        while not self._worker.stopping:
            page = self._call(realm_id, lambda s=since: self._feed.list_changed(realm_id, s))  # type: ignore[misc]
            next_mark, more = after_page(since, page, max_objects=self._max_objects)
            if more and next_mark <= since:
                # More than one answer's worth of Classes share one second: CDC cannot get past
                # it, so read everything instead (docs/qbo.md, "CDC and webhooks").
                return applied + self._read_all(realm_id, reason="one second over the cap")
            applied += self._applier.apply(realm_id, page.classes, cdc_mark=next_mark)
            log.info(
                "cdc_polled",
                realm_id=realm_id,
                changed_since=since.isoformat(),
                received=len(page.classes),
                applied=applied,
                more=more,
            )
            if not more:
                break
            since = next_mark
        return applied

    def _read_all(self, realm_id: str, *, reason: str) -> int:
        """Read every Class page by page; the mark becomes QBO's time of the first answer.

        Changes made while the pages are read are newer than that time, so the next CDC poll
        gets them again; applying one twice changes nothing (SyncToken).
        """
        applied, start, mark = 0, 1, None
        while not self._worker.stopping:
            page = self._call(
                realm_id,
                lambda p=start: self._feed.query_page(realm_id, p, self._page_size),  # type: ignore[misc]
            )
            mark = mark or page.answered_at
            last = len(page.classes) < self._page_size
            applied += self._applier.apply(realm_id, page.classes, cdc_mark=mark if last else None)
            if last:
                break
            start += self._page_size
        log.info("cdc_full_read", realm_id=realm_id, reason=reason, applied=applied)
        return applied

    def _call(self, realm_id: str, call: Callable[[], ChangePage]) -> ChangePage:
        with self._limiter.call(realm_id):
            return call()


__all__ = ["CdcPoller", "NextWindow", "QboError", "after_page", "first_window"]
