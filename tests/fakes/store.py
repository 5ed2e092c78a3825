"""In-memory store: rows, a serialisable unit of work, and the Class store (ports.ClassStore)."""

from __future__ import annotations

import copy
import itertools
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Self

from classsync.domain import (
    ClassInput,
    ErrorCode,
    Rejection,
    ValidClass,
    identity_key,
    join_path,
    split_full_name,
)
from classsync.sync.ports import (
    AdoptionCandidate,
    JobStatus,
    StoredClass,
    StoreError,
    StoreUnavailable,
)
from tests.fakes.jobs import FakeJobStore


@dataclass
class FakeClassRow:
    """A QBClass row."""

    id: str
    name: str
    key: str
    full_name: str | None
    is_active: bool
    is_sparse: bool
    domain_source: str | None
    qb_id: str | None = None
    version_token: int = 0
    updated_at: datetime | None = None
    realm_id: str = ""


@dataclass
class FakeJobRow:
    """A sync job row."""

    class_id: str
    realm_id: str
    depth: int
    status: str = JobStatus.PENDING.value
    generation: int = 1
    attempts: int = 0
    next_attempt_at: datetime | None = None
    outcome_unknown: bool = False
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    last_error_code: str | None = None
    last_error_message: str | None = None
    updated_at: datetime | None = None
    synced_at: datetime | None = None


@dataclass
class Tables:
    """The rows of one database state (committed, or a transaction's working copy)."""

    classes: dict[str, FakeClassRow] = field(default_factory=dict)
    jobs: dict[str, FakeJobRow] = field(default_factory=dict)


class FakeDatabase:
    """Committed state shared by every FakeUnitOfWork; transactions run one at a time."""

    def __init__(self) -> None:
        self.tables = Tables()
        self.commits = 0  # transactions committed, to hold the engine to its budget
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._commit_failures: deque[StoreError] = deque()
        # Class rows another transaction (an ingest) holds locked: a batch's outcome write skips them
        self.locked_by_others: set[str] = set()

    def uow(self) -> FakeUnitOfWork:
        """A new unit of work (the engine's ``uow_factory``)."""
        return FakeUnitOfWork(self)

    def fail_next_commits(self, count: int = 1, error: StoreError | None = None) -> None:
        """Make the next ``count`` commits fail (the work is rolled back)."""
        for _ in range(count):
            self._commit_failures.append(error or StoreUnavailable("connection lost (scripted)"))

    def new_id(self) -> str:
        """A new local class id."""
        return f"class-{next(self._ids)}"

    def job(self, class_id: str) -> FakeJobRow:
        """The committed job row of ``class_id``."""
        return self.tables.jobs[class_id]

    def row(self, class_id: str) -> FakeClassRow:
        """The committed class row ``class_id``."""
        return self.tables.classes[class_id]


class FakeUnitOfWork:
    """One serialisable transaction over a FakeDatabase (ports.UnitOfWork)."""

    def __init__(self, database: FakeDatabase) -> None:
        self._database = database
        self._work: Tables | None = None

    @property
    def classes(self) -> FakeClassStore:
        """The Class rows, in this transaction."""
        return FakeClassStore(self._database, self._tables())

    @property
    def jobs(self) -> FakeJobStore:
        """The job queue, in this transaction."""
        return FakeJobStore(self._tables(), self._database)

    def _tables(self) -> Tables:
        assert self._work is not None, "use the unit of work in a with block"
        return self._work

    def __enter__(self) -> Self:
        self._database._lock.acquire()
        self._work = copy.deepcopy(self._database.tables)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._work = None
        self._database._lock.release()

    def commit(self) -> None:
        """Make the work durable (or fail as scripted, dropping it)."""
        if self._database._commit_failures:
            raise self._database._commit_failures.popleft()
        self._database.tables = copy.deepcopy(self._tables())
        self._database.commits += 1

    def rollback(self) -> None:
        """Drop the work."""
        self._work = copy.deepcopy(self._database.tables)


class FakeClassStore:
    """ports.ClassStore: upsert by qb_id, else by fully-qualified name, inside the realm;
    ancestors as placeholders."""

    def __init__(self, database: FakeDatabase, tables: Tables) -> None:
        self._database = database
        self._tables = tables

    def save_batch(
        self, items: Sequence[ValidClass], realm_id: str, now: datetime
    ) -> list[StoredClass | Rejection]:
        """Upsert the rows and (re)queue their jobs; one result per item, in order."""
        results: list[StoredClass | Rejection] = []
        for item in items:
            row = self._find(item, realm_id)
            if isinstance(row, Rejection):
                results.append(row)
                continue
            for depth in range(1, item.depth):
                self._placeholder(item.path[:depth], realm_id, now)
            if row is None:
                row = FakeClassRow(self._database.new_id(), "", "", None, True, False, None)
                row.realm_id = realm_id
                self._tables.classes[row.id] = row
            row.name, row.key, row.full_name = item.name, item.key, item.full_name
            row.is_active, row.is_sparse = item.is_active, item.is_sparse
            row.domain_source, row.updated_at = item.domain_source, now
            generation = self._enqueue(row.id, realm_id, item.depth, now)
            results.append(StoredClass(class_id=row.id, generation=generation))
        return results

    def adoption_candidates(
        self, realm_id: str, *, after: str | None, limit: int
    ) -> list[AdoptionCandidate]:
        """The realm's rows with no key, or no qbId and no job, in id order."""
        rows = sorted(
            (
                r
                for r in self._tables.classes.values()
                if r.realm_id == realm_id
                and (not r.key or (r.qb_id is None and r.id not in self._tables.jobs))
            ),
            key=lambda r: r.id,
        )
        picked = [r for r in rows if after is None or r.id > after][:limit]
        return [
            AdoptionCandidate(
                class_id=r.id,
                key=r.key or None,
                qb_id=r.qb_id,
                has_job=r.id in self._tables.jobs,
                fields=ClassInput(
                    name=r.name,
                    full_name=r.full_name or "",
                    is_sub_class=len(split_full_name(r.full_name or r.name)) > 1,
                    is_active=r.is_active,
                    domain_source=r.domain_source or "",
                    is_sparse=r.is_sparse,
                ),
            )
            for r in picked
        ]

    def assign_key(self, class_id: str, key: str) -> bool:
        """Give a keyless row its identity key; False if another row of its realm holds it."""
        if self._by_key(key, self._tables.classes[class_id].realm_id) is not None:
            return False
        self._tables.classes[class_id].key = key
        return True

    def count_unsynced_without_job(self) -> int:
        """How many rows have no qbId and no job."""
        return sum(1 for r in self._tables.classes.values() if self._unsynced(r))

    def _unsynced(self, row: FakeClassRow) -> bool:
        return row.qb_id is None and row.id not in self._tables.jobs

    def _find(self, item: ValidClass, realm_id: str) -> FakeClassRow | Rejection | None:
        by_key = self._by_key(item.key, realm_id)
        if not item.qb_id:
            return by_key
        by_qb_id = next(
            (
                r
                for r in self._tables.classes.values()
                if r.qb_id == item.qb_id and r.realm_id == realm_id
            ),
            None,
        )
        if by_qb_id is None:
            return Rejection(ErrorCode.UNKNOWN_QB_ID, f"no Class with qb_id {item.qb_id!r}")
        if by_key is not None and by_key.id != by_qb_id.id:
            return Rejection(ErrorCode.QB_ID_CONFLICT, f"qb_id and {item.key!r} differ")
        return by_qb_id

    def _by_key(self, key: str, realm_id: str) -> FakeClassRow | None:
        return next(
            (r for r in self._tables.classes.values() if r.key == key and r.realm_id == realm_id),
            None,
        )

    def _placeholder(self, path: tuple[str, ...], realm_id: str, now: datetime) -> None:
        key, depth = identity_key(path), len(path)
        if self._by_key(key, realm_id) is not None:
            return
        full_name = join_path(path)
        row = FakeClassRow(self._database.new_id(), path[-1], key, full_name, True, False, None)
        row.updated_at, row.realm_id = now, realm_id
        self._tables.classes[row.id] = row
        self._tables.jobs[row.id] = FakeJobRow(row.id, realm_id, depth, next_attempt_at=now)

    def _enqueue(self, class_id: str, realm_id: str, depth: int, now: datetime) -> int:
        job = self._tables.jobs.get(class_id)
        if job is None:
            self._tables.jobs[class_id] = FakeJobRow(
                class_id, realm_id, depth, next_attempt_at=now, updated_at=now
            )
            return 1
        # A job being worked on keeps its lease: only its generation moves on.
        job.generation += 1
        if job.status != JobStatus.IN_PROGRESS.value:
            job.status = JobStatus.PENDING.value
        job.depth, job.attempts, job.next_attempt_at = depth, 0, now
        job.last_error_code = job.last_error_message = None
        job.updated_at = now
        return job.generation
