"""The webhook inbox: events stored once per event id before the endpoint answers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import Session

from classsync.domain import WebhookNotice
from classsync.store.models import WebhookEvent

# An event that still cannot be applied after this many rounds is given up: the CDC poll reads
# every change anyway (docs/architecture.md, "Changes made in QBO").
MAX_ATTEMPTS = 20


class WebhookInboxRepository:
    """``sync.ports.WebhookInbox`` on SQLAlchemy."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, notices: Sequence[WebhookNotice], now: datetime) -> int:
        """Insert the events not stored yet. A known event id is also skipped by the database
        itself, so two replicas receiving the same delivery at once store it once."""
        unique = {n.event_id: n for n in notices}
        known = set(
            self._session.scalars(
                select(WebhookEvent.event_id).where(WebhookEvent.event_id.in_(list(unique)))
            )
        )
        added = 0
        for notice in unique.values():
            if notice.event_id in known:
                continue
            values = {
                "eventId": notice.event_id,
                "realmId": notice.realm_id,
                "entityName": notice.entity_name,
                "entityId": notice.entity_id,
                "operation": notice.operation,
                "occurredAt": notice.occurred_at,
                "receivedAt": now,
                "attempts": 0,
            }
            result = self._session.execute(self._insert_ignoring_duplicates(values))
            # rowcount is 0 when a concurrent writer stored it first; some drivers say -1.
            added += 0 if result.rowcount == 0 else 1  # type: ignore[attr-defined]
        return added

    def _insert_ignoring_duplicates(self, values: dict[str, Any]) -> Any:
        table = cast(Table, WebhookEvent.__table__)
        dialect = self._session.get_bind().dialect.name
        if dialect == "postgresql":
            return postgresql.insert(table).values(values).on_conflict_do_nothing()
        if dialect == "sqlite":
            return sqlite.insert(table).values(values).on_conflict_do_nothing()
        return mysql.insert(table).values(values).prefix_with("IGNORE")

    def due(self, limit: int, now: datetime) -> list[WebhookNotice]:
        """Unprocessed events, oldest first."""
        query = (
            select(WebhookEvent)
            .where(WebhookEvent.processed_at.is_(None), WebhookEvent.received_at <= now)
            .order_by(WebhookEvent.received_at, WebhookEvent.event_id)
            .limit(limit)
        )
        return [
            WebhookNotice(
                event_id=e.event_id,
                realm_id=e.realm_id,
                entity_name=e.entity_name,
                entity_id=e.entity_id,
                operation=e.operation,
                occurred_at=e.occurred_at,
            )
            for e in self._session.scalars(query)
        ]

    def waiting(self) -> int:
        """How many events are stored and not processed yet (for `classsync status`)."""
        query = (
            select(func.count())
            .select_from(WebhookEvent)
            .where(WebhookEvent.processed_at.is_(None))
        )
        return int(self._session.scalar(query) or 0)

    def mark_processed(self, event_ids: Sequence[str], now: datetime) -> None:
        """The events were applied (or needed nothing)."""
        if event_ids:
            self._session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.event_id.in_(list(event_ids)))
                .values(processed_at=now)
            )

    def mark_failed(self, event_ids: Sequence[str], error: str, now: datetime) -> None:
        """Count an attempt; after MAX_ATTEMPTS the event is given up (CDC still reads the change)."""
        for event in self._session.scalars(
            select(WebhookEvent).where(WebhookEvent.event_id.in_(list(event_ids)))
        ):
            event.attempts += 1
            event.last_error = error[:2000]
            if event.attempts >= MAX_ATTEMPTS:
                event.processed_at = now
