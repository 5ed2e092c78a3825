"""Which stored row each incoming Class is (qb_id first, else full name), and what to write."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from classsync.domain.classes import (
    QBO_SEPARATOR,
    ErrorCode,
    Rejection,
    ValidClass,
    identity_key,
    join_path,
    split_full_name,
)


@dataclass(frozen=True, slots=True)
class StoredRow:
    """What a stored row holds: tells an identical resend from a change."""

    name: str
    full_name: str | None
    key: str
    is_sub_class: bool
    is_active: bool
    domain_source: str | None
    is_sparse: bool
    synced: bool  # its job is SYNCED: QBO holds this version
    edited_in_qbo: bool  # a change made in QBO itself was applied since our last write
    # What the caller last sent (None: not known, the row's own values stand in).
    sent_key: str | None = None
    sent_full_name: str | None = None
    sent_active: bool | None = None


@dataclass(frozen=True, slots=True)
class KnownRows:
    """The stored rows a request's Classes could be, as row ids.

    ``by_key`` maps an identity key (``identity_key``: "a:b") to the row holding it; ``by_qb_id``
    maps a QBO Id to the row linked to it. They need only cover ``lookup_keys(items)``; a row
    renamed or moved in QBO is also found under the full name the caller last sent for it.
    ``stored`` (by row id) holds what those rows hold; a row missing there is always rewritten.
    """

    by_key: Mapping[str, str]
    by_qb_id: Mapping[str, str]
    stored: Mapping[str, StoredRow] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Placeholder:
    """An ancestor nobody sent (yet): stored active and named after its level, so children sync."""

    path: tuple[str, ...]
    domain_source: str | None  # the child's: the ancestor exists because of that caller

    # The attributes a row is written from, like ValidClass's.
    @property
    def name(self) -> str:
        """The last level of the path."""
        return self.path[-1]

    @property
    def key(self) -> str:
        """Identity by fully-qualified name (QBO form, case-folded)."""
        return identity_key(self.path)

    @property
    def full_name(self) -> str:
        """Stored in QBO form, in the casing of the child that needed it."""
        return join_path(self.path)

    @property
    def is_sub_class(self) -> bool:
        """True below the top level."""
        return len(self.path) > 1

    @property
    def is_active(self) -> bool:
        """Placeholders are active, so children can be created under them in QBO."""
        return True

    @property
    def is_sparse(self) -> bool:
        """Created with every field, never as a sparse update."""
        return False


@dataclass(frozen=True, slots=True)
class UpsertPlan:
    """What to write for one request's Classes; row ids of new rows are chosen here.

    ``results`` has one entry per item, in input order: the id of the row it is stored in, or why
    it was refused. ``queue`` lists every row whose sync job starts a new generation (depth
    1 for a top-level Class, for parents-first claiming); ``placeholders`` are the ancestors
    created here, whose jobs are queued once and never re-queued by a child. ``unchanged`` are
    rows resent exactly as the caller last sent them, and synced: nothing is written or queued
    for them. In ``updates``, a field the caller sent as before keeps the row's value (a change
    made in QBO stands); ``sent`` then holds the Class as the caller sent it. ``overwrites``
    names, per updated row, the fields that undo a change made in QBO itself.
    """

    results: list[str | Rejection]
    inserts: dict[str, ValidClass | Placeholder]
    updates: dict[str, ValidClass]
    queue: dict[str, int]
    placeholders: dict[str, int]
    unchanged: set[str] = field(default_factory=set)
    sent: dict[str, ValidClass] = field(default_factory=dict)
    overwrites: dict[str, tuple[str, ...]] = field(default_factory=dict)


def lookup_keys(items: Sequence[ValidClass]) -> tuple[list[str], list[str]]:
    """The full-name keys (each item's and its ancestors') and qb_ids ``plan_upsert`` looks up."""
    keys = {key for item in items for key in _keys_with_ancestors(item.path)}
    qb_ids = {item.qb_id for item in items if item.qb_id}
    return sorted(keys), sorted(qb_ids)


def _new_row_id() -> str:
    return str(uuid.uuid4())


def plan_upsert(
    items: Sequence[ValidClass], known: KnownRows, new_id: Callable[[], str] = _new_row_id
) -> UpsertPlan:
    """Decide, for each Class of one request, which row it is and what must be written.

    Identity: a Class with a qb_id is the row linked to that QBO Id (it may be renamed), and is
    refused when that Id is unknown or its new full name belongs to another row. Without a
    qb_id, it is the row with the same fully-qualified name ("A / B" and "A:B" are one name,
    and so are "Marketing" and "marketing": QBO holds one class for both), or the row the
    caller last sent under that name (renamed or moved in QBO since), or a new row; a match in
    other casing renames the row (and, once synced, QBO's class) to the new casing. Missing
    ancestors become placeholders. A Class sent twice in one request is one row; the last one
    sent wins. A synced row sent again as before is left alone (``unchanged``).
    """
    by_key = dict(known.by_key)  # grows with the rows planned here
    plan = UpsertPlan(results=[], inserts={}, updates={}, queue={}, placeholders={})
    for item in items:
        row_id = _match(item, by_key, known.by_qb_id)
        if isinstance(row_id, Rejection):
            plan.results.append(row_id)
            continue
        _plan_placeholders(item, by_key, plan, new_id)
        if row_id is None:
            row_id = new_id()
            by_key[item.key] = row_id
            plan.inserts[row_id] = item
        elif row_id in plan.inserts:  # a placeholder or an earlier copy, both new here
            plan.inserts[row_id] = item
            plan.placeholders.pop(row_id, None)
        else:
            by_key[item.key] = row_id  # may be a rename through qb_id
            if _plan_update(item, row_id, known.stored.get(row_id), plan):
                plan.results.append(row_id)
                continue
        written = plan.updates.get(row_id, item)  # an update may keep QBO's path (and depth)
        plan.queue[row_id] = written.depth
        plan.results.append(row_id)
    return plan


def _plan_update(item: ValidClass, row_id: str, stored: StoredRow | None, plan: UpsertPlan) -> bool:
    """Plan the update of a stored row; True when it is an identical resend (nothing to do)."""
    resent = stored is not None and stored.synced and row_id not in plan.updates
    if resent and stored is not None and _as_sent(item, stored):
        plan.unchanged.add(row_id)
        return True
    plan.unchanged.discard(row_id)
    row = item if stored is None else _keep_qbo_edits(item, stored)
    plan.updates[row_id] = row
    if row is not item:
        plan.sent[row_id] = item
    if stored is not None and stored.edited_in_qbo:
        undone = _qbo_fields_changed(row, stored)
        if undone:
            plan.overwrites[row_id] = undone
    return False


def _sent(stored: StoredRow) -> tuple[str, str | None, bool]:
    """(key, full name, active) as the caller last sent them; the row's own if not known."""
    if stored.sent_key is None:
        return stored.key, stored.full_name, stored.is_active
    active = stored.is_active if stored.sent_active is None else stored.sent_active
    return stored.sent_key, stored.sent_full_name, active


def _as_sent(item: ValidClass, stored: StoredRow) -> bool:
    """The caller sends exactly what it sent last time (name and sub-class follow the key)."""
    return (item.key, item.full_name, item.is_active, item.domain_source, item.is_sparse) == (
        *_sent(stored),
        stored.domain_source,
        stored.is_sparse,
    )


def _keep_qbo_edits(item: ValidClass, stored: StoredRow) -> ValidClass:
    """``item`` with the row's value for each field the caller sent unchanged.

    Those fields differ from what the caller sent only because of a change made in QBO, read
    back since: the conflict rule keeps it (QBO wins for the fields changed there).
    """
    if stored.sent_key is None:
        return item
    sent_key, _, sent_active = _sent(stored)
    changes: dict[str, object] = {}
    if item.key == sent_key and stored.key != item.key:
        path = _stored_path(stored)
        changes.update(
            path=path, name=path[-1], full_name=stored.full_name, is_sub_class=len(path) > 1
        )
    if item.is_active == sent_active and stored.is_active != item.is_active:
        changes["is_active"] = stored.is_active
    return replace(item, **changes) if changes else item  # type: ignore[arg-type]


def _stored_path(stored: StoredRow) -> tuple[str, ...]:
    """The row's levels in their stored casing (its key is case-folded)."""
    for levels in (split_full_name(stored.full_name or ""), (stored.name,)):
        if levels and identity_key(levels) == stored.key:
            return levels
    return tuple(stored.key.split(QBO_SEPARATOR))


def _qbo_fields_changed(item: ValidClass, stored: StoredRow) -> tuple[str, ...]:
    """The fields QBO syncs (name, parent, active) that ``item`` takes back from a change made
    in QBO: the row's value came from QBO (it differs from what the caller sent, or that is not
    known) and ``item`` has another one."""
    sent_key, _, sent_active = _sent(stored)
    known = stored.sent_key is not None
    path = tuple(stored.key.split(QBO_SEPARATOR))
    sent_path = tuple(sent_key.split(QBO_SEPARATOR))
    changed = []
    if item.name != stored.name and (not known or path[-1] != sent_path[-1]):
        changed.append("name")
    parent_key = identity_key(item.parent_path)
    if parent_key != join_path(path[:-1]) and (not known or path[:-1] != sent_path[:-1]):
        changed.append("parent_id")
    if item.is_active != stored.is_active and (not known or stored.is_active != sent_active):
        changed.append("active")
    return tuple(changed)


def _match(
    item: ValidClass, by_key: Mapping[str, str], by_qb_id: Mapping[str, str]
) -> str | Rejection | None:
    """The row ``item`` is, None for a new one, or why it cannot be stored."""
    if not item.qb_id:
        return by_key.get(item.key)
    row_id = by_qb_id.get(item.qb_id)
    if row_id is None:
        return Rejection(
            ErrorCode.UNKNOWN_QB_ID,
            f"no Class with qb_id {item.qb_id!r} is stored here; send it without "
            "qb_id to create it, or with its full_name to link it by name",
        )
    holder = by_key.get(item.key)
    if holder is not None and holder != row_id:
        return Rejection(
            ErrorCode.QB_ID_CONFLICT,
            f"qb_id {item.qb_id!r} belongs to one Class and full name "
            f"{item.key!r} to another; rename one of them first",
        )
    return row_id


def _plan_placeholders(
    item: ValidClass, by_key: dict[str, str], plan: UpsertPlan, new_id: Callable[[], str]
) -> None:
    """Plan a placeholder row for each ancestor of ``item`` that is neither stored nor planned."""
    for depth in range(1, len(item.path)):
        path = item.path[:depth]
        key = identity_key(path)
        if key in by_key:
            continue
        row_id = new_id()
        by_key[key] = row_id
        plan.inserts[row_id] = Placeholder(path=path, domain_source=item.domain_source)
        plan.placeholders[row_id] = depth


def _keys_with_ancestors(path: tuple[str, ...]) -> list[str]:
    return [identity_key(path[: i + 1]) for i in range(len(path))]
