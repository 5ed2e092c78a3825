"""Read-only facts for health checks and metrics: reachability, schema, queue, realm state."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import cached_property

from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from classsync.store import migrate
from classsync.store.models import QboRealm, SyncJob
from classsync.store.token_store import CONNECTED
from classsync.sync.ports import JobStatus

_NOT_SYNCED = (JobStatus.PENDING.value, JobStatus.IN_PROGRESS.value)


class StoreMonitor:
    """Answers the health checks and the scrape-time gauges from the database.

    ``assume_connected`` says what a realm with no stored tokens yet is: connected when a
    bootstrap refresh token is configured (the first sync will use it), else not connected.
    """

    def __init__(
        self,
        engine: Engine,
        session_factory: sessionmaker[Session],
        realm_id: str,
        *,
        assume_connected: bool,
    ) -> None:
        self._engine = engine
        self._session_factory = session_factory
        self._realm_id = realm_id
        self._assume_connected = assume_connected

    @cached_property
    def schema_head(self) -> str:
        """The newest migration shipped with this version."""
        return migrate.head()

    def ping(self) -> None:
        """Raise unless the database answers ``SELECT 1``."""
        with self._engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def schema_revision(self) -> str | None:
        """The migration the database is at; None when classsync never migrated it."""
        with self._engine.connect() as connection:
            if not inspect(connection).has_table(migrate.VERSION_TABLE):
                return None
            row = connection.execute(
                text(f"SELECT version_num FROM {migrate.VERSION_TABLE}")  # noqa: S608 - constant
            ).first()
            return None if row is None else str(row[0])

    def realm_connected(self) -> tuple[bool, str | None]:
        """Whether the configured realm's refresh token is usable, as the token store last saw."""
        with self._session_factory() as session:
            row = session.get(QboRealm, self._realm_id)
            if row is None:
                if self._assume_connected:
                    return True, None
                return False, f"realm {self._realm_id} was never connected: run `classsync connect`"
            return row.status == CONNECTED, row.status_message

    def job_counts(self) -> Mapping[tuple[str, str], int]:
        """Number of jobs per (realm, status)."""
        with self._session_factory() as session:
            rows = session.execute(
                select(SyncJob.realm_id, SyncJob.status, func.count()).group_by(
                    SyncJob.realm_id, SyncJob.status
                )
            )
            return {(realm, status): int(count) for realm, status, count in rows}

    def oldest_pending(self) -> Mapping[str, datetime]:
        """Per realm, when the oldest job not yet synced last changed."""
        with self._session_factory() as session:
            rows = session.execute(
                select(SyncJob.realm_id, func.min(SyncJob.updated_at))
                .where(SyncJob.status.in_(_NOT_SYNCED))
                .group_by(SyncJob.realm_id)
            )
            return {realm: oldest for realm, oldest in rows if oldest is not None}
