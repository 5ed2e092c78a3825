"""In-memory QBO (ports.QboGateway) with scriptable effects per call and a record of calls."""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from classsync.domain import (
    ClassWrite,
    QboClass,
    QboDuplicateName,
    QboError,
    QboNotFound,
    QboStaleSyncToken,
)

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class AnswerThenRaise:
    """Scripted effect: QBO applies the write, then ``error`` is raised (the answer was lost)."""

    error: QboError


Effect = BaseException | QboClass | AnswerThenRaise | Callable[[], object]


@dataclass(frozen=True, slots=True)
class FakeCall:
    """One call the engine made: ``operation`` is create/update/read/find_by_name/batch_write."""

    operation: str
    realm_id: str
    argument: object


class FakeQboGateway:
    """ports.QboGateway over an in-memory QBO, with scriptable effects per call.

    Unscripted calls behave like QBO: Ids and SyncTokens are assigned, an update with an old
    SyncToken is refused (5010), a create whose name exists under the same parent is refused
    (6240), a repeated create ``request_id`` returns the first answer. ``script(operation, ...)``
    queues effects for that operation's next calls (see ``Effect`` and ``AnswerThenRaise``; a
    callable runs first, then QBO answers normally). Every call is recorded in ``calls``.
    """

    def __init__(self) -> None:
        self.classes: dict[str, dict[str, QboClass]] = {}  # realm -> Id -> class
        self.calls: list[FakeCall] = []
        self._scripts: dict[str, deque[Effect]] = {}
        self._answered: dict[str, QboClass] = {}  # create request_id -> first answer
        self._ids = itertools.count(100)
        self._lock = threading.Lock()

    def script(self, operation: str, *effects: Effect) -> None:
        """Queue ``effects`` for the next calls of ``operation``, one per call."""
        self._scripts.setdefault(operation, deque()).extend(effects)

    def operations(self) -> list[str]:
        """The operations called so far, in order."""
        return [call.operation for call in self.calls]

    def seed(self, realm_id: str, name: str, *, active: bool = True) -> QboClass:
        """A top-level class QBO already holds (created by someone else)."""
        return self._store(realm_id, None, ClassWrite(name=name, active=active))

    def edit(self, realm_id: str, qbo_id: str, **changes: object) -> QboClass:
        """Someone else changes a class in QBO: its SyncToken moves on."""
        current = self.classes[realm_id][qbo_id]
        changed = replace(current, sync_token=str(int(current.sync_token) + 1), **changes)  # type: ignore[arg-type]
        self.classes[realm_id][qbo_id] = changed
        return changed

    def create(self, realm_id: str, write: ClassWrite) -> QboClass:
        """Create a Class."""
        return self._run("create", realm_id, write, lambda: self._create(realm_id, write))

    def update(self, realm_id: str, write: ClassWrite) -> QboClass:
        """Update a Class by Id + SyncToken."""
        return self._run("update", realm_id, write, lambda: self._update(realm_id, write))

    def read(self, realm_id: str, qbo_id: str) -> QboClass:
        """Read one Class by Id."""
        return self._run("read", realm_id, qbo_id, lambda: self._read(realm_id, qbo_id))

    def find_by_name(self, realm_id: str, fully_qualified_name: str) -> QboClass | None:
        """The Class with this FullyQualifiedName, if any."""
        return self._run(
            "find_by_name",
            realm_id,
            fully_qualified_name,
            lambda: self._by_name(realm_id, fully_qualified_name),
        )

    def batch_write(self, realm_id: str, writes: Sequence[ClassWrite]) -> list[QboClass | QboError]:
        """Creates/updates in one request; a fault per item, not for the whole batch."""
        return self._run(
            "batch_write", realm_id, list(writes), lambda: self._batch(realm_id, writes)
        )

    def _run(self, operation: str, realm_id: str, argument: object, answer: Callable[[], _T]) -> _T:
        with self._lock:
            self.calls.append(FakeCall(operation, realm_id, argument))
            queue = self._scripts.get(operation)
            effect = queue.popleft() if queue else None
        if isinstance(effect, BaseException):
            raise effect
        if isinstance(effect, QboClass):
            return effect  # type: ignore[return-value]
        if isinstance(effect, AnswerThenRaise):
            with self._lock:
                answer()
            raise effect.error
        if effect is not None:
            effect()
        with self._lock:
            return answer()

    def _batch(self, realm_id: str, writes: Sequence[ClassWrite]) -> list[QboClass | QboError]:
        results: list[QboClass | QboError] = []
        for write in writes:
            try:
                if write.qbo_id is None:
                    results.append(self._create(realm_id, write))
                else:
                    results.append(self._update(realm_id, write))
            except QboError as error:
                results.append(error)
        return results

    def _create(self, realm_id: str, write: ClassWrite) -> QboClass:
        if write.request_id is not None and write.request_id in self._answered:
            return self._answered[write.request_id]
        result = self._store(realm_id, None, write)
        if write.request_id is not None:
            self._answered[write.request_id] = result
        return result

    def _update(self, realm_id: str, write: ClassWrite) -> QboClass:
        current = self._read(realm_id, write.qbo_id or "")
        if write.sync_token != current.sync_token:
            msg = f"stale SyncToken {write.sync_token}, QBO holds {current.sync_token}"
            raise QboStaleSyncToken(msg, code="5010")
        return self._store(realm_id, current, write)

    def _read(self, realm_id: str, qbo_id: str) -> QboClass:
        found = self.classes.get(realm_id, {}).get(qbo_id)
        if found is None:
            raise QboNotFound(f"no class {qbo_id}", code="610")
        return found

    def _by_name(self, realm_id: str, full_name: str) -> QboClass | None:
        realm = self.classes.get(realm_id, {})
        # QBO compares names without regard to case (docs/qbo.md, "The Class entity").
        wanted = full_name.casefold()
        return next(
            (c for c in realm.values() if c.fully_qualified_name.casefold() == wanted), None
        )

    def _store(self, realm_id: str, current: QboClass | None, write: ClassWrite) -> QboClass:
        realm = self.classes.setdefault(realm_id, {})
        parent = realm.get(write.parent_id or "")
        full_name = f"{parent.fully_qualified_name}:{write.name}" if parent else write.name
        holder = self._by_name(realm_id, full_name)
        if holder is not None and (current is None or holder.id != current.id):
            raise QboDuplicateName(f"another class is named {full_name!r}", code="6240")
        stored = QboClass(
            id=current.id if current else str(next(self._ids)),
            sync_token=str(int(current.sync_token) + 1) if current else "0",
            name=write.name,
            fully_qualified_name=full_name,
            active=write.active,
            parent_id=write.parent_id,
        )
        realm[stored.id] = stored
        return stored
