"""What the sync layer needs from storage, QBO and time, and the data it passes: owned by sync.

``classsync.store`` and ``classsync.qbo`` implement these protocols; the engine and the ingest
service see only them, so tests can drive every decision with the fakes in ``tests/fakes.py``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Protocol, Self

from classsync.domain import (
    ChangePage,
    ClassWrite,
    LocalClass,
    QboClass,
    QboError,
    Rejection,
    RemoteApply,
    SideValues,
    ValidClass,
    WebhookNotice,
    join_path,
    split_full_name,
)


class JobStatus(enum.StrEnum):
    """Where a sync job stands; stored as text in ``ClasssyncJob.status``.

    IN_PROGRESS is internal to the queue (a worker holds the lease); callers see it as PENDING.
    """

    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    SYNCED = "SYNCED"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class StoredClass:
    """A Class row was written and its sync job (re)queued at ``generation``."""

    class_id: str
    generation: int
    # Fields (name, parent_id, active) on which this write undoes a change made in QBO itself.
    overwrites_qbo_edit: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ClassSnapshot:
    """The local state the engine needs to sync one Class."""

    class_id: str
    qb_id: str | None
    name: str
    key: str
    is_active: bool
    is_sparse: bool
    version_token: int
    # What QBO held at our last sync (the conflict rule's base); None when not known.
    base: SideValues | None = None

    @property
    def parent_key(self) -> str | None:
        """QBO-form path of the parent, None for a top-level Class."""
        path = split_full_name(self.key)
        return join_path(path[:-1]) if len(path) > 1 else None


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job leased to one worker."""

    class_id: str
    realm_id: str
    generation: int
    attempts: int
    depth: int
    outcome_unknown: bool
    snapshot: ClassSnapshot
    # (QBO Id, job status) of the parent, read in the claim's transaction; None at top level.
    parent: tuple[str | None, str | None] | None = None


@dataclass(frozen=True, slots=True)
class JobState:
    """Where a Class's sync stands, for answering callers."""

    class_id: str
    status: str
    generation: int
    qb_id: str | None
    version_token: int
    error_code: str | None
    error_message: str | None


class StoreError(Exception):
    """The store could not do the work; the unit of work was rolled back."""


class StoreConflict(StoreError):
    """A concurrent writer won a race (a unique key taken meanwhile): running the work again may pass."""


class StoreUnavailable(StoreError):
    """The database failed transiently (connection lost, restart, deadlock victim): retry later."""


class ClassStore(Protocol):
    """QBClass rows: stored by identity (qb_id, else fully-qualified name)."""

    def save_batch(
        self, items: Sequence[ValidClass], realm_id: str, now: datetime
    ) -> list[StoredClass | Rejection]:
        """Upsert the rows and (re)queue their jobs; one result per item, in order."""
        ...


class JobStore(Protocol):
    """The sync-job queue: claim with a lease, record outcomes, answer states."""

    def claim(
        self,
        *,
        owner: str,
        limit: int,
        lease: timedelta,
        now: datetime,
        realm_id: str | None = None,
    ) -> list[ClaimedJob]:
        """Lease up to ``limit`` due jobs to ``owner`` (parents before children)."""
        ...

    def extend_leases(self, owner: str, class_ids: Sequence[str], *, until: datetime) -> int:
        """Push out the leases ``owner`` still holds; how many it still held."""
        ...

    def parent_state(self, parent_key: str) -> tuple[str | None, str | None]:
        """(QBO Id, job status) of the Class at ``parent_key``; (None, None) if unknown."""
        ...

    def record_synced(
        self, claimed: ClaimedJob, owner: str, qbo: QboClass, now: datetime
    ) -> JobState | None:
        """Store QBO's Id and SyncToken and finish the job; None if the lease was lost."""
        ...

    def record_link(self, claimed: ClaimedJob, qbo: QboClass, now: datetime) -> None:
        """Link the row to an existing QBO class (found by name) before updating it."""
        ...

    def retry_later(
        self,
        claimed: ClaimedJob,
        owner: str,
        *,
        at: datetime,
        error_code: str,
        error_message: str,
        count_attempt: bool,
        outcome_unknown: bool,
        now: datetime,
    ) -> None:
        """Hand the job back, due again at ``at``."""
        ...

    def record_failed(
        self, claimed: ClaimedJob, owner: str, *, error_code: str, error_message: str, now: datetime
    ) -> None:
        """Finish the job as FAILED with its reason."""
        ...

    def release_jobs(self, owner: str, class_ids: Sequence[str], now: datetime) -> int:
        """Hand back some of ``owner``'s leased jobs untouched (no attempt counted)."""
        ...

    def release(self, owner: str, now: datetime) -> int:
        """Hand back every lease ``owner`` holds (graceful stop)."""
        ...

    def states(self, class_ids: Sequence[str]) -> dict[str, JobState]:
        """Current job state and QBO link of each Class."""
        ...

    def counts(self) -> dict[str, int]:
        """Number of jobs per status."""
        ...

    def oldest_pending(self) -> datetime | None:
        """When the oldest Class not yet synced was accepted."""
        ...

    def requeue(self, *, failed_only: bool, class_ids: Sequence[str], now: datetime) -> int:
        """Put jobs back in the queue with fresh attempts."""
        ...


class UnitOfWork(Protocol):
    """One transaction with the stores bound to it. Leaving without ``commit()`` rolls back.

    Storage failures inside the block leave it as ``StoreConflict`` or ``StoreUnavailable``.
    """

    @property
    def classes(self) -> ClassStore:
        """The Class rows, in this transaction."""
        ...

    @property
    def jobs(self) -> JobStore:
        """The job queue, in this transaction."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None:
        """Make the work durable."""
        ...

    def rollback(self) -> None:
        """Drop the work."""
        ...


class QboGateway(Protocol):
    """What the sync engine needs from QBO for Classes; raises only domain ``QboError``s."""

    def create(self, realm_id: str, write: ClassWrite) -> QboClass:
        """Create a Class (``write.qbo_id`` is None); ``write.request_id`` makes it idempotent."""
        ...

    def update(self, realm_id: str, write: ClassWrite) -> QboClass:
        """Update a Class by Id + SyncToken; a sparse update when ``write.sparse``."""
        ...

    def read(self, realm_id: str, qbo_id: str) -> QboClass:
        """Read one Class by Id."""
        ...

    def find_by_name(self, realm_id: str, fully_qualified_name: str) -> QboClass | None:
        """The Class with this FullyQualifiedName, active or inactive, if any."""
        ...

    def batch_write(self, realm_id: str, writes: Sequence[ClassWrite]) -> list[QboClass | QboError]:
        """Up to 30 creates/updates in one request; results in input order, faults per item."""
        ...


@dataclass(frozen=True, slots=True)
class ClassView:
    """One Class as the read API reports it: the row, its QBO link and its sync job."""

    class_id: str
    name: str
    full_name: str | None  # as the caller wrote it
    key: str | None  # QBO-form "A:B:C", the identity of a Class without a qb_id
    qb_id: str | None
    version_token: int
    status: str  # a JobStatus value
    generation: int
    error_code: str | None
    error_message: str | None


class ClassReader(Protocol):
    """Read-only lookups of a realm's Classes, outside any unit of work."""

    def find(
        self,
        realm_id: str,
        ids: Sequence[str],
        qb_ids: Sequence[str],
        full_name_keys: Sequence[str],
    ) -> list[ClassView]:
        """The realm's Classes whose id, QBO Id or QBO-form full name is listed; each once."""
        ...


class Clock(Protocol):
    """Wall-clock time for stamps and due times: UTC, naive (as the store's columns hold it)."""

    def now(self) -> datetime:
        """The current time."""
        ...


# --- two-way sync: changes made in QBO flow back (docs/architecture.md, "Changes made in QBO") ---


class RemoteChangeStore(Protocol):
    """Local rows as changes read from QBO see them, and the per-realm CDC mark."""

    def local_classes(
        self, realm_id: str, qb_ids: Sequence[str], keys: Sequence[str]
    ) -> tuple[dict[str, LocalClass], dict[str, LocalClass]]:
        """Rows linked to ``qb_ids`` (by QBO Id) and rows at ``keys`` (by full name)."""
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


class RemoteUnitOfWork(Protocol):
    """One transaction over the remote-change store and the webhook inbox."""

    @property
    def changes(self) -> RemoteChangeStore:
        """Local rows and CDC marks, in this transaction."""
        ...

    @property
    def inbox(self) -> WebhookInbox:
        """The webhook inbox, in this transaction."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None:
        """Make the work durable."""
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

    def record(self, realm_id: str, winner: str, field: str) -> None:
        """One field decided: ``winner`` is ``qbo`` or ``caller``."""
        ...
