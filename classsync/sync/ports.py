"""What the sync layer needs from storage, QBO and time, and the data it passes: owned by sync.

``classsync.store`` and ``classsync.qbo`` implement these protocols; the engine and the ingest
service see only them, so tests can drive every decision with the fakes in ``tests/fakes/``.
"""

# size: every interface sync owns, in the one module the adapters may import (the architecture
# test allows exactly this one); it is declarations only, no logic.
from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Protocol, Self

from classsync.domain import (
    ClassInput,
    ClassWrite,
    QboClass,
    QboError,
    Rejection,
    SideValues,
    ValidClass,
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
    # The job as leased in the same statement (``OneClassStore`` with a ``JobLease``): it goes
    # straight to this process's engine, with no claim.
    claimed: ClaimedJob | None = None


@dataclass(frozen=True, slots=True)
class JobLease:
    """Lease a job to ``owner`` until ``until`` in the very statement that queues it."""

    owner: str
    until: datetime


@dataclass(frozen=True, slots=True)
class ClassSnapshot:
    """The local state the engine needs to sync one Class."""

    class_id: str
    qb_id: str | None
    name: str
    key: str  # the identity key (case-folded QBO form, see domain.identity_key)
    is_active: bool
    is_sparse: bool
    version_token: int
    full_name: str = ""  # QBO form in the stored casing, for look-ups by name in QBO
    # What QBO held at our last sync (the conflict rule's base); None when not known.
    base: SideValues | None = None

    @property
    def parent_key(self) -> str | None:
        """Identity key of the parent, None for a top-level Class."""
        path = split_full_name(self.key)
        return join_path(path[:-1]) if len(path) > 1 else None

    @property
    def qbo_full_name(self) -> str:
        """The FullyQualifiedName to look this Class up by in QBO."""
        return self.full_name or self.key


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


@dataclass(frozen=True, slots=True)
class LinkedClass:
    """A local row linked to a QBO Id: who holds it, for messages that name it."""

    class_id: str
    full_name: str


class QbIdTaken(StoreConflict):
    """QBO answered with an Id another local row already holds: running it again cannot pass.

    The unique index on ``qbId`` refused the link, so the two rows name one QBO class (e.g. rows
    copied from another QBO company, or names the database told apart but QBO does not).
    """

    def __init__(self, qb_id: str, holder: LinkedClass) -> None:
        super().__init__(
            f"QBO answered with Id {qb_id}, which local Class {holder.class_id} "
            f"({holder.full_name!r}) already holds: both rows name one QBO class; correct or "
            "remove one of them, then requeue this one with `classsync retry --id`"
        )
        self.qb_id = qb_id
        self.holder = holder


@dataclass(frozen=True, slots=True)
class AdoptionCandidate:
    """A row stored without classsync: no identity key, or no QBO Id and no sync job.

    ``key`` is its stored identity key (None when it has none); ``fields`` its values as a
    caller would send them.
    """

    class_id: str
    key: str | None
    qb_id: str | None
    has_job: bool
    fields: ClassInput


class ClassStore(Protocol):
    """QBClass rows: stored by identity inside their realm (qb_id, else fully-qualified name)."""

    def adoption_candidates(
        self, realm_id: str, *, after: str | None, limit: int
    ) -> list[AdoptionCandidate]:
        """The realm's rows with no key, or no qbId and no job: in id order, ``limit`` after
        id ``after``."""
        ...

    def assign_key(self, class_id: str, key: str) -> bool:
        """Give a keyless row its identity key; False (nothing written) if another row of its
        realm holds it."""
        ...

    def count_unsynced_without_job(self) -> int:
        """How many rows have no qbId and no job."""
        ...

    def save_batch(
        self, items: Sequence[ValidClass], realm_id: str, now: datetime
    ) -> list[StoredClass | Rejection]:
        """Upsert the rows and (re)queue their jobs; one result per item, in order."""
        ...


class OneClassStore(Protocol):
    """The latency hot path of ingest: one new top-level Class in one round trip, committed."""

    def store_new(
        self, item: ValidClass, realm_id: str, now: datetime, lease: JobLease | None
    ) -> StoredClass | None:
        """Insert the row and its job (leased with ``lease``) in one transaction of its own.

        None, with nothing written, when the realm holds a row under the Class's key already
        (or the Class is not a new top-level one): the caller then takes the general path.
        """
        ...


class OneStatementOutcome(Protocol):
    """The latency hot path of an outcome: a synced job recorded in one round trip, committed."""

    def record_synced(
        self, claimed: ClaimedJob, owner: str, qbo: QboClass, now: datetime
    ) -> JobState | None:
        """``JobStore.record_synced`` in a transaction of its own (``StoreConflict`` when
        another row holds QBO's Id, ``StoreUnavailable`` when the database cannot be reached)."""
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

    def due_realms(self, now: datetime) -> list[str]:
        """The realms that have a job due at ``now`` (pending and due, or lease run out)."""
        ...

    def extend_leases(self, owner: str, class_ids: Sequence[str], *, until: datetime) -> int:
        """Push out the leases ``owner`` still holds; how many it still held."""
        ...

    def parent_state(self, realm_id: str, parent_key: str) -> tuple[str | None, str | None]:
        """(QBO Id, job status) of the realm's Class at ``parent_key``; (None, None) if unknown."""
        ...

    def record_synced(
        self, claimed: ClaimedJob, owner: str, qbo: QboClass, now: datetime
    ) -> JobState | None:
        """Store QBO's Id and SyncToken and finish the job; None if the lease was lost."""
        ...

    def record_synced_many(
        self, synced: Sequence[tuple[ClaimedJob, QboClass]], owner: str, now: datetime
    ) -> dict[str, JobState | None]:
        """``record_synced`` for several jobs in this one transaction, by class id.

        A job whose Class row is locked by another transaction (an ingest writing it) is left
        out of the answer, not waited for: the caller records it on its own.
        """
        ...

    def record_link(self, claimed: ClaimedJob, qbo: QboClass, now: datetime) -> None:
        """Link the row to an existing QBO class (found by name) before updating it."""
        ...

    def qb_id_holder(self, qb_id: str, *, other_than: str) -> LinkedClass | None:
        """The row of ``other_than``'s realm, other than it, linked to QBO Id ``qb_id``, if any
        (a QBO Id is unique only inside one company)."""
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

    def failed_counts(self) -> dict[str, int]:
        """Number of FAILED jobs per error code."""
        ...

    def oldest_pending(self) -> datetime | None:
        """When the oldest Class not yet synced was accepted."""
        ...

    def requeue(self, *, failed_only: bool, class_ids: Sequence[str], now: datetime) -> int:
        """Put jobs back in the queue with fresh attempts."""
        ...


class Transaction(Protocol):
    """A unit of work's lifecycle: one transaction, rolled back on leaving without ``commit()``.

    Storage failures inside the block leave it as ``StoreConflict`` or ``StoreUnavailable``.
    """

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


class UnitOfWork(Transaction, Protocol):
    """One transaction over the Class rows and the job queue."""

    @property
    def classes(self) -> ClassStore:
        """The Class rows, in this transaction."""
        ...

    @property
    def jobs(self) -> JobStore:
        """The job queue, in this transaction."""
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
    key: str | None  # identity key "a:b:c" (case-folded QBO form) of a Class without a qb_id
    qb_id: str | None
    version_token: int
    status: str  # a JobStatus value
    generation: int
    error_code: str | None
    error_message: str | None
    # The identity key the caller last sent for it: the name a Class renamed or moved in QBO is
    # still asked for by (docs/architecture.md, "The conflict rule").
    caller_key: str | None = None


class ClassReader(Protocol):
    """Read-only lookups of a realm's Classes, outside any unit of work."""

    def find(
        self,
        realm_id: str,
        ids: Sequence[str],
        qb_ids: Sequence[str],
        full_name_keys: Sequence[str],
    ) -> list[ClassView]:
        """The realm's Classes whose id, QBO Id, QBO-form full name or last key the caller sent
        (``caller_key``) is listed; each once."""
        ...


class RealmDirectory(Protocol):
    """Which QBO companies (realms) have a working connection (tokens stored, not refused)."""

    def is_connected(self, realm_id: str) -> bool:
        """True when the realm has a refresh token stored and QBO has not refused it."""
        ...


class Clock(Protocol):
    """Wall-clock time for stamps and due times: UTC, naive (as the store's columns hold it)."""

    def now(self) -> datetime:
        """The current time."""
        ...


@dataclass(frozen=True, slots=True)
class ReplicaSeat:
    """How many replicas are alive, and this one's place among them (0 = the oldest)."""

    replicas: int
    rank: int


class SyncMetrics(Protocol):
    """What the sync layer reports for monitoring (classsync.observability implements it)."""

    def class_received(self, count: int) -> None:
        """``count`` Classes were received from callers and stored."""
        ...

    def class_synced(self, realm_id: str) -> None:
        """A Class reached QBO and its outcome was recorded."""
        ...

    def class_failed(self, realm_id: str, code: str) -> None:
        """A Class's sync ended FAILED with ``code``."""
        ...

    def qbo_request(self, realm_id: str, operation: str, outcome: str, seconds: float) -> None:
        """One QBO request ended: ``outcome`` is "ok" or the kind of error."""
        ...

    def throttled(self, realm_id: str) -> None:
        """QBO answered a request with a throttle (HTTP 429)."""
        ...


class NoSyncMetrics:
    """SyncMetrics that records nothing (metrics off, and the default)."""

    def class_received(self, count: int) -> None:
        """Nothing."""

    def class_synced(self, realm_id: str) -> None:
        """Nothing."""

    def class_failed(self, realm_id: str, code: str) -> None:
        """Nothing."""

    def qbo_request(self, realm_id: str, operation: str, outcome: str, seconds: float) -> None:
        """Nothing."""

    def throttled(self, realm_id: str) -> None:
        """Nothing."""
