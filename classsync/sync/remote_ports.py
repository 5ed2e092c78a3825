"""What reading changes back from QBO needs from storage and QBO: owned by sync.

The two-way counterpart of ``ports.py`` (docs/architecture.md, "Changes made in QBO");
``classsync.store`` and ``classsync.qbo`` implement these protocols.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from classsync.domain import (
    ChangePage,
    LocalClass,
    QboClass,
    RemoteApply,
    WebhookNotice,
)
from classsync.sync.ports import Transaction


class RemoteChangeStore(Protocol):
    """Local rows as changes read from QBO see them, and the per-realm CDC mark."""

    def local_classes(
        self, realm_id: str, qb_ids: Sequence[str], keys: Sequence[str]
    ) -> tuple[dict[str, LocalClass], dict[str, LocalClass]]:
        """Rows linked to ``qb_ids`` (by QBO Id), and rows at ``keys`` (full names, any casing),
        the latter keyed by case-folded identity key."""
        ...

    def apply(self, change: RemoteApply, now: datetime) -> bool:
        """Write one decided change (descendants' full names follow); False if it could not be."""
        ...

    def cdc_mark(self, realm_id: str) -> datetime | None:
        """The realm's next ``changedSince``; None when it was never polled."""
        ...

    def set_cdc_mark(self, realm_id: str, changed_since: datetime, now: datetime) -> None:
        """Move the realm's mark (in the transaction that applies what it covers)."""
        ...


class WebhookInbox(Protocol):
    """Webhook events stored before the endpoint answers, processed afterwards."""

    def add(self, notices: Sequence[WebhookNotice], now: datetime) -> int:
        """Store the events not stored yet (by event id); how many were new."""
        ...

    def due(self, limit: int, now: datetime) -> list[WebhookNotice]:
        """Unprocessed events, oldest first, whose next attempt time has come."""
        ...

    def mark_processed(self, event_ids: Sequence[str], now: datetime) -> None:
        """The events were applied (or need nothing)."""
        ...

    def mark_failed(self, event_ids: Sequence[str], error: str, now: datetime) -> None:
        """The events could not be applied now; count an attempt, keep them for later."""
        ...


class RemoteUnitOfWork(Transaction, Protocol):
    """One transaction over the remote-change store and the webhook inbox."""

    @property
    def changes(self) -> RemoteChangeStore:
        """Local rows and CDC marks, in this transaction."""
        ...

    @property
    def inbox(self) -> WebhookInbox:
        """The webhook inbox, in this transaction."""
        ...


class QboChangeFeed(Protocol):
    """What reading changes back from QBO needs; raises only domain ``QboError``s."""

    def list_changed(self, realm_id: str, changed_since: datetime) -> ChangePage:
        """CDC: Classes changed at or after ``changed_since`` (oldest first, capped by QBO)."""
        ...

    def query_page(self, realm_id: str, start_position: int, max_results: int) -> ChangePage:
        """One page of every Class, active and inactive, in Id order (a full re-read)."""
        ...

    def read(self, realm_id: str, qbo_id: str) -> QboClass:
        """Read one Class by Id."""
        ...


class ConflictRecorder(Protocol):
    """Counts conflicts between a caller's change and one made in QBO (exported as a metric)."""

    def conflict_decided(self, realm_id: str, winner: str, field: str) -> None:
        """One field decided: ``winner`` is ``qbo`` or ``caller``."""
        ...
