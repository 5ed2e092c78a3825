"""In-memory fakes of the two-way ports (RemoteUnitOfWork, RemoteChangeStore, WebhookInbox, QboChangeFeed)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self

from classsync.domain import (
    ChangePage,
    LocalClass,
    QboClass,
    QboNotFound,
    RemoteApply,
    RemoteClass,
    SideValues,
    WebhookNotice,
)


@dataclass
class RemoteWorld:
    """What the fake database holds: local rows by QBO Id, marks, inbox; plus what was applied."""

    locals_by_qb_id: dict[str, LocalClass] = field(default_factory=dict)
    marks: dict[str, datetime] = field(default_factory=dict)
    events: dict[str, tuple[WebhookNotice, bool]] = field(default_factory=dict)
    applied: list[RemoteApply] = field(default_factory=list)
    commits: list[tuple[list[str], datetime | None]] = field(default_factory=list)


class FakeChanges:
    def __init__(self, world: RemoteWorld) -> None:
        self.world = world
        self.staged_mark: tuple[str, datetime] | None = None
        self.applied_ids: list[str] = []

    def local_classes(
        self, realm_id: str, qb_ids: Sequence[str], keys: Sequence[str]
    ) -> tuple[dict[str, LocalClass], dict[str, LocalClass]]:
        by_qb = {
            q: self.world.locals_by_qb_id[q] for q in qb_ids if q in self.world.locals_by_qb_id
        }
        by_key = {c.key: c for c in self.world.locals_by_qb_id.values() if c.key in keys}
        return by_qb, by_key

    def apply(self, change: RemoteApply, now: datetime) -> bool:
        self.world.applied.append(change)
        self.applied_ids.append(change.remote.id)
        remote = change.remote
        self.world.locals_by_qb_id[remote.id] = LocalClass(
            class_id=change.local.class_id if change.local else f"row-{remote.id}",
            qb_id=remote.id,
            key=change.key,
            current=change.values,
            base=SideValues(remote.name, remote.parent_id, remote.active),
            version_token=int(remote.sync_token),
            job_status="SYNCED" if change.settled else "PENDING",
        )
        return True

    def cdc_mark(self, realm_id: str) -> datetime | None:
        return self.world.marks.get(realm_id)

    def set_cdc_mark(self, realm_id: str, changed_since: datetime, now: datetime) -> None:
        self.staged_mark = (realm_id, changed_since)


class FakeInbox:
    def __init__(self, world: RemoteWorld) -> None:
        self.world = world

    def add(self, notices: Sequence[WebhookNotice], now: datetime) -> int:
        new = [n for n in notices if n.event_id not in self.world.events]
        for notice in new:
            self.world.events[notice.event_id] = (notice, False)
        return len({n.event_id for n in new})

    def due(self, limit: int, now: datetime) -> list[WebhookNotice]:
        return [n for n, done in self.world.events.values() if not done][:limit]

    def mark_processed(self, event_ids: Sequence[str], now: datetime) -> None:
        for event_id in event_ids:
            self.world.events[event_id] = (self.world.events[event_id][0], True)

    def mark_failed(self, event_ids: Sequence[str], error: str, now: datetime) -> None:
        pass


class FakeRemoteUow:
    """Work is kept only on commit (a snapshot of the world is restored otherwise)."""

    def __init__(self, world: RemoteWorld) -> None:
        self.world = world

    def __enter__(self) -> Self:
        self._before = copy.deepcopy(self.world)
        self.changes = FakeChanges(self.world)
        self.inbox = FakeInbox(self.world)
        self._committed = False
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._committed:
            self.world.__dict__.update(self._before.__dict__)

    def commit(self) -> None:
        mark = self.changes.staged_mark
        if mark is not None:
            self.world.marks[mark[0]] = mark[1]
        self.world.commits.append((self.changes.applied_ids, None if mark is None else mark[1]))
        self._committed = True


def qbo_class(
    qbo_id: str,
    name: str,
    token: int = 0,
    *,
    parent: str | None = None,
    fqn: str | None = None,
    active: bool = True,
) -> QboClass:
    return QboClass(
        id=qbo_id,
        sync_token=str(token),
        name=name,
        fully_qualified_name=fqn or name,
        active=active,
        parent_id=parent,
    )


class FakeFeed:
    """QBO's CDC and query over a list of (LastUpdatedTime, Class), with QBO's cap."""

    def __init__(self, now: datetime, *, cap: int = 1000) -> None:
        self.now = now
        self.cap = cap
        self.changes: list[RemoteClass] = []
        self.cdc_calls: list[datetime] = []
        self.query_calls: list[int] = []
        self.fail = False

    def add(self, qbo: QboClass, when: datetime) -> None:
        self.changes.append(RemoteClass(qbo, when))

    def list_changed(self, realm_id: str, changed_since: datetime) -> ChangePage:
        if self.fail:
            raise ConnectionError("QBO unreachable")
        if changed_since < self.now - timedelta(days=30):
            raise ValueError("changedSince must be within the last 30 days")
        self.cdc_calls.append(changed_since)
        since = changed_since.replace(microsecond=0)
        found = sorted(
            (c for c in self.changes if c.last_updated and c.last_updated >= since),
            key=lambda c: (c.last_updated, c.qbo.id),
        )
        return ChangePage(found[: self.cap], self.now)

    def query_page(self, realm_id: str, start_position: int, max_results: int) -> ChangePage:
        self.query_calls.append(start_position)
        latest: dict[str, RemoteClass] = {}
        for change in self.changes:
            latest[change.qbo.id] = change
        ordered = sorted(latest.values(), key=lambda c: int(c.qbo.id))
        return ChangePage(ordered[start_position - 1 : start_position - 1 + max_results], self.now)

    def read(self, realm_id: str, qbo_id: str) -> QboClass:
        found = [c.qbo for c in self.changes if c.qbo.id == qbo_id]
        if not found:
            raise QboNotFound(f"no class {qbo_id}", code="610")
        return found[-1]
