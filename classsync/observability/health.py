"""Health that tells the truth: a checker thread pings the database and reads the realm state."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import structlog

log = structlog.get_logger(__name__)


class HealthProbes(Protocol):
    """What the checks read (classsync.store.monitoring.StoreMonitor implements it)."""

    @property
    def schema_head(self) -> str:
        """The newest migration this version of classsync ships."""
        ...

    def ping(self) -> None:
        """Raise unless the database answers a trivial query."""
        ...

    def schema_revision(self) -> str | None:
        """The migration the database is at (None: never migrated)."""
        ...

    def realm_connected(self) -> tuple[bool, str | None]:
        """(whether the configured realm can get tokens, the reason when it cannot)."""
        ...


@dataclass(frozen=True, slots=True)
class HealthReport:
    """What one round of checks found."""

    realm_id: str
    database_reachable: bool
    database_error: str | None = None
    schema_revision: str | None = None
    schema_head: str | None = None
    # None until the realm state could be read (the database was never reachable).
    realm_connected: bool | None = None
    realm_message: str | None = None
    checked_at: float = 0.0  # time.time() of the check

    @property
    def schema_at_head(self) -> bool:
        """The database carries every migration this version ships."""
        return self.schema_revision is not None and self.schema_revision == self.schema_head

    @property
    def ready(self) -> bool:
        """Can serve: the database answers and is migrated to head."""
        return self.database_reachable and self.schema_at_head

    def reasons(self) -> list[str]:
        """Why the service is not ready (empty when it is)."""
        found = []
        if not self.database_reachable:
            found.append(f"database unreachable: {self.database_error}")
        elif not self.schema_at_head:
            found.append(
                f"database schema at {self.schema_revision or 'nothing'}, expected "
                f"{self.schema_head}: run `classsync migrate`"
            )
        return found

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (no secrets: errors are driver messages)."""
        return {
            "ready": self.ready,
            "reasons": self.reasons(),
            "database": {
                "reachable": self.database_reachable,
                "error": self.database_error,
                "schema_revision": self.schema_revision,
                "schema_head": self.schema_head,
                "schema_at_head": self.schema_at_head,
            },
            "realm": {
                "realm_id": self.realm_id,
                "connected": self.realm_connected,
                "message": self.realm_message,
            },
            "checked_at": self.checked_at,
        }


def check(
    probes: HealthProbes, realm_id: str, previous: HealthReport | None = None
) -> HealthReport:
    """Run every check once. While the database is unreachable or not migrated the realm state is
    not known afresh, so the previous one is kept (a database outage says nothing about QBO)."""
    now = time.time()
    kept = previous or HealthReport(realm_id=realm_id, database_reachable=False)
    try:
        probes.ping()
        revision = probes.schema_revision()
        if revision != probes.schema_head:
            # Reachable but not migrated (to head): the realm's table may not exist yet, so the
            # realm state is not read and the one known before is kept.
            return replace(
                kept,
                database_reachable=True,
                database_error=None,
                schema_revision=revision,
                schema_head=probes.schema_head,
                checked_at=now,
            )
        connected, message = probes.realm_connected()
    except Exception as error:
        return replace(
            kept,
            database_reachable=False,
            database_error=_one_line(error),
            schema_head=probes.schema_head,
            checked_at=now,
        )
    return HealthReport(
        realm_id=realm_id,
        database_reachable=True,
        schema_revision=revision,
        schema_head=probes.schema_head,
        realm_connected=connected,
        realm_message=message,
        checked_at=now,
    )


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


class HealthMonitor:
    """Checks every ``interval`` seconds on a daemon thread; tells ``on_change`` what changed.

    A database that drops packets instead of refusing them leaves a connect hanging for minutes:
    the checks run on a thread of their own, and one with no answer within ``timeout`` seconds
    counts as the database being unreachable (no second check starts while it still hangs).
    """

    def __init__(
        self,
        probes: HealthProbes,
        realm_id: str,
        *,
        interval: float,
        on_change: Callable[[HealthReport], None],
        timeout: float | None = None,
    ) -> None:
        self._probes = probes
        self._realm_id = realm_id
        self._interval = interval
        self._timeout = max(2 * interval, 5.0) if timeout is None else timeout
        self._on_change = on_change
        self._report = HealthReport(realm_id=realm_id, database_reachable=False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # The round in progress and where it puts its report. A daemon thread, not an executor:
        # an executor's threads are joined at exit, and a hung connect would hold the exit up.
        self._round: threading.Thread | None = None
        self._round_result: list[HealthReport] = []

    @property
    def report(self) -> HealthReport:
        """The latest report."""
        return self._report

    def check_now(self) -> HealthReport:
        """One round of checks; ``on_change`` hears about it when the verdicts moved."""
        before = self._report
        after = self._run_check(before)
        self._report = after
        if _verdicts(after) != _verdicts(before) or before.checked_at == 0.0:
            healthy = after.ready and after.realm_connected is not False
            (log.info if healthy else log.warning)(
                "health_changed",
                database_reachable=after.database_reachable,
                schema_at_head=after.schema_at_head,
                realm_connected=after.realm_connected,
                reasons=after.reasons(),
            )
            self._on_change(after)
        return after

    def _run_check(self, before: HealthReport) -> HealthReport:
        if self._round is None or not self._round.is_alive():
            result: list[HealthReport] = []
            self._round_result = result
            self._round = threading.Thread(
                target=lambda: result.append(check(self._probes, self._realm_id, before)),
                name="health-check",
                daemon=True,
            )
            self._round.start()
        self._round.join(self._timeout)
        if self._round_result:
            return self._round_result[0]
        return replace(
            before,
            database_reachable=False,
            database_error=f"no answer within {self._timeout:g} s",
            checked_at=time.time(),
        )

    def start(self) -> None:
        """Check now, then on a daemon thread."""
        self._stop.clear()
        self.check_now()
        self._thread = threading.Thread(target=self._run, name="health-monitor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.check_now()
            except Exception:  # a bug in a listener must not end the checks
                log.exception("health_check_failed")

    def stop(self) -> None:
        """Stop checking (before the server drains, so no check flips it back to SERVING)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._interval + self._timeout)
            self._thread = None


def _verdicts(report: HealthReport) -> tuple[bool, bool, bool | None]:
    return (report.database_reachable, report.schema_at_head, report.realm_connected)
