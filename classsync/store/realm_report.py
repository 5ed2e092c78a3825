"""What operators see per QBO company (realm): connection state and sync backlog, never a token."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from classsync.store.models import QBClass, QboRealm, SyncJob
from classsync.store.token_store import CONNECTED
from classsync.sync.ports import JobStatus

NOT_CONNECTED = "NOT_CONNECTED"
_WAITING = (JobStatus.PENDING.value, JobStatus.IN_PROGRESS.value)


@dataclass
class RealmReport:
    """One realm: its connection and its jobs per status."""

    realm_id: str
    status: str = NOT_CONNECTED
    message: str | None = None
    # When the row last changed: a token refresh or save while CONNECTED, else the disconnection.
    changed_at: datetime | None = None
    jobs: dict[str, int] = field(default_factory=dict)
    oldest_pending: datetime | None = None

    @property
    def backlog(self) -> int:
        """Classes of this realm not in QBO yet (pending or being synced)."""
        return sum(self.jobs.get(status, 0) for status in _WAITING)


def realm_reports(
    session_factory: sessionmaker[Session], also: tuple[str, ...] = ()
) -> list[RealmReport]:
    """Every realm with a connection row or jobs (and each of ``also``), by realm id."""
    reports: dict[str, RealmReport] = {realm_id: RealmReport(realm_id) for realm_id in also}
    with session_factory() as session:
        for row in session.scalars(select(QboRealm)):
            report = reports.setdefault(row.realm_id, RealmReport(row.realm_id))
            report.status, report.message = row.status, row.status_message
            report.changed_at = row.updated_at
            if not row.refresh_token and row.status == CONNECTED:
                report.status = NOT_CONNECTED  # a row made for a lock, never given tokens
        counts = select(SyncJob.realm_id, SyncJob.status, func.count()).group_by(
            SyncJob.realm_id, SyncJob.status
        )
        for realm_id, status, count in session.execute(counts):
            reports.setdefault(realm_id, RealmReport(realm_id)).jobs[status] = int(count)
        oldest = (
            select(SyncJob.realm_id, func.min(QBClass.updated_at))
            .join(QBClass, QBClass.id == SyncJob.class_id)
            .where(SyncJob.status.in_(_WAITING))
            .group_by(SyncJob.realm_id)
        )
        for realm_id, moment in session.execute(oldest):
            reports[realm_id].oldest_pending = moment
    return [reports[realm_id] for realm_id in sorted(reports)]
