"""The conflict rule between a caller's change and one made in QBO itself; pure, no I/O.

A field is *changed in QBO* when QBO's value differs from the base (what QBO held at our last
sync), and *changed by the caller* when the local value differs from the base while the caller's
version is not synced yet. Rule (docs/architecture.md, "Changes made in QBO"):

- QBO wins for every field changed there since our last sync;
- the caller wins for the other fields (its change is still pushed);
- a field both sides changed to different values is a conflict: QBO's value is kept, and the
  caller's value it supersedes is logged and counted, never dropped silently;
- a caller who sends a value again *after* QBO's change was read back changes the base's value:
  that is a new change and wins, and overwriting the QBO-side edit is logged and counted.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

import structlog

from classsync.domain import (
    LocalClass,
    QboClass,
    RemoteApply,
    SideValues,
    SyncStatus,
    join_path,
    qbo_path,
)
from classsync.sync.remote_ports import ConflictRecorder

log = structlog.get_logger(__name__)

FIELDS = ("name", "parent_id", "active")


@dataclass(frozen=True, slots=True)
class FieldConflict:
    """One field both sides changed: the caller's value lost to QBO's."""

    field: str
    caller_value: object
    qbo_value: object


def remote_values(remote: QboClass) -> SideValues:
    """The conflict-rule view of a Class as QBO holds it."""
    return SideValues(name=remote.name, parent_id=remote.parent_id or None, active=remote.active)


def remote_key(remote: QboClass) -> str:
    """QBO's FullyQualifiedName in the local key form (levels joined with ':')."""
    return join_path(qbo_path(remote.fully_qualified_name or remote.name))


def sync_token_number(sync_token: str) -> int:
    """QBO's SyncToken as stored locally (a decimal string in QBO; the Node column is an Int)."""
    try:
        return int(sync_token)
    except ValueError:
        return -1


def is_news(local: LocalClass | None, remote: QboClass) -> bool:
    """False when the local row already reflects this SyncToken (an echo of our own write, or a
    change applied before through the other channel: webhook and CDC report the same edit)."""
    if local is None or local.qb_id != remote.id:
        return True
    return sync_token_number(remote.sync_token) > local.version_token


def decide(
    realm_id: str, local: LocalClass | None, remote: QboClass
) -> tuple[RemoteApply, list[FieldConflict]]:
    """What the local row becomes after QBO reported ``remote``, and the conflicts it settled."""
    theirs = remote_values(remote)
    key = remote_key(remote)
    if local is None:
        return RemoteApply(realm_id, remote, None, theirs, key, True, True), []
    pending = local.job_status not in (None, SyncStatus.SYNCED.value)
    if local.qb_id is None:
        # A row not synced yet, found by its full name: QBO's class pre-dates it (the engine
        # would link it on 6240 too). Link it; the caller's values stay and are still pushed.
        values = SideValues(local.current.name, theirs.parent_id, local.current.active)
        settled = values == theirs
        return RemoteApply(realm_id, remote, local, values, local.key, settled, False), []
    base = local.base
    edited_in_qbo = base is None or base != theirs
    if not pending:
        return RemoteApply(realm_id, remote, local, theirs, key, True, edited_in_qbo), []
    merged: dict[str, object] = {}
    conflicts: list[FieldConflict] = []
    for field in FIELDS:
        ours = getattr(local.current, field)
        qbo = getattr(theirs, field)
        changed_in_qbo = base is None or getattr(base, field) != qbo
        changed_by_caller = base is None or getattr(base, field) != ours
        if changed_in_qbo:
            merged[field] = qbo
            if changed_by_caller and ours != qbo:
                conflicts.append(FieldConflict(field, ours, qbo))
        else:
            merged[field] = ours
    values = SideValues(**merged)  # type: ignore[arg-type]
    # The row's full name: the winning parent's path, then the winning name.
    parent_path = qbo_path(local.key if values.parent_id != theirs.parent_id else key)[:-1]
    key = join_path((*parent_path, values.name))
    settled = values == theirs
    return RemoteApply(realm_id, remote, local, values, key, settled, edited_in_qbo), conflicts


class ConflictCounter:
    """``ConflictRecorder`` kept in memory: counts per (realm, winner, field), thread-safe.

    ``forward_to`` (the metrics, when on) is told of each conflict too.
    """

    def __init__(self, forward_to: ConflictRecorder | None = None) -> None:
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self._lock = threading.Lock()
        self._forward_to = forward_to

    def conflict_decided(self, realm_id: str, winner: str, field: str) -> None:
        """One field decided in favour of ``winner`` (``qbo`` or ``caller``)."""
        with self._lock:
            self._counts[(realm_id, winner, field)] += 1
        if self._forward_to is not None:
            self._forward_to.conflict_decided(realm_id, winner, field)

    def counts(self) -> dict[tuple[str, str, str], int]:
        """A copy of the counts, keyed by (realm, winner, field)."""
        with self._lock:
            return dict(self._counts)

    def total(self, winner: str | None = None) -> int:
        """Every conflict counted (or those won by ``winner``)."""
        with self._lock:
            return sum(n for (_, w, _), n in self._counts.items() if winner in (None, w))
