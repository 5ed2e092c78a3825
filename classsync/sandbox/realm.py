"""One QBO company (realm): its Classes and QBO's rules for creating and updating them."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

from classsync.sandbox import wire
from classsync.sandbox.config import SandboxConfig

# Class Ids look like "5000000000000007280" in Intuit's samples; numeric, because python-quickbooks
# decides create-vs-update with int(Id) > 0 (docs/qbo.md, "The Class entity", "python-quickbooks").
ID_BASE = 5_000_000_000_000_000_000
_CONTROL = {chr(c) for c in range(32)} | {"\x7f"}
# Bound on remembered requestids per realm, so a long benchmark cannot grow memory forever.
MAX_REPLAYS = 100_000


@dataclass(slots=True)
class ClassRecord:
    """A Class as the sandbox stores it; times are epoch seconds."""

    id: int
    name: str
    parent_id: int | None
    active: bool
    sync_token: int
    created: float
    updated: float


@dataclass(slots=True)
class Replay:
    """The stored answer to a write sent with a requestid (docs/qbo.md, "requestid and duplicates")."""

    status: int
    body: str
    fingerprint: str
    created: float


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _parent_ref(body: dict[str, Any]) -> str | None:
    ref = body.get("ParentRef")
    if isinstance(ref, dict):
        value = str(ref.get("value") or "").strip()
        return value or None
    if isinstance(ref, str | int) and str(ref).strip():
        return str(ref).strip()
    return None


class Realm:
    """The Classes of one company plus its requestid memory. Not thread-safe: one event loop."""

    def __init__(self, realm_id: str) -> None:
        self.realm_id = realm_id
        self.classes: dict[int, ClassRecord] = {}
        self.next_id = ID_BASE + 1
        self.replays: OrderedDict[str, Replay] = OrderedDict()
        self._by_name: dict[str, set[int]] = {}
        self._children: dict[int | None, set[int]] = {}

    # ----------------------------------------------------------------------------- reading

    def find(self, raw_id: Any) -> ClassRecord | None:
        """The class with this Id (string or int), or None."""
        try:
            return self.classes.get(int(str(raw_id).strip()))
        except ValueError:
            return None

    def path(self, record: ClassRecord) -> list[str]:
        """Names from the top-most parent down to ``record``."""
        names = [record.name]
        parent = record.parent_id
        while parent is not None:
            upper = self.classes[parent]
            names.append(upper.name)
            parent = upper.parent_id
        names.reverse()
        return names

    def fully_qualified_name(self, record: ClassRecord) -> str:
        """Parent:Child, computed on every read so renames show through (docs/qbo.md)."""
        return ":".join(self.path(record))

    def depth(self, record: ClassRecord) -> int:
        """1 for a top-level class."""
        return len(self.path(record))

    def _height(self, class_id: int) -> int:
        """Levels in the subtree rooted at ``class_id`` (1 for a leaf)."""
        children = self._children.get(class_id, ())
        return 1 + max((self._height(child) for child in children), default=0)

    def _descendants(self, class_id: int) -> list[int]:
        found: list[int] = []
        stack = list(self._children.get(class_id, ()))
        while stack:
            current = stack.pop()
            found.append(current)
            stack.extend(self._children.get(current, ()))
        return found

    def descendants(self, class_id: int) -> list[int]:
        """Ids of every class below ``class_id``, at any depth."""
        return self._descendants(class_id)

    def to_json(self, record: ClassRecord) -> dict[str, Any]:
        """The Class in QBO's JSON shape (docs/qbo.md, "The Class entity")."""
        data: dict[str, Any] = {"Name": record.name, "SubClass": record.parent_id is not None}
        if record.parent_id is not None:
            data["ParentRef"] = {"value": str(record.parent_id)}
        data.update(
            {
                "FullyQualifiedName": self.fully_qualified_name(record),
                "Active": record.active,
                "domain": "QBO",
                "sparse": False,
                "Id": str(record.id),
                "SyncToken": str(record.sync_token),
                "MetaData": {
                    "CreateTime": wire.iso_seconds(record.created),
                    "LastUpdatedTime": wire.iso_seconds(record.updated),
                },
            }
        )
        return data

    # ----------------------------------------------------------------------------- rules

    def _check_name(self, name: Any, config: SandboxConfig) -> str:
        if not isinstance(name, str) or not name.strip():
            raise wire.required_missing("Name")
        if len(name) > config.max_name_length:
            raise wire.bad_length("Name", config.max_name_length, len(name))
        # ':' joins FullyQualifiedName levels; QBO refused it for Customer with 2040 (docs/qbo.md,
        # "The Class entity").
        if config.reject_colon_in_name and ":" in name:
            raise wire.invalid_string("Name", "':' is the sub-class separator")
        if config.reject_control_chars and any(ch in _CONTROL for ch in name):
            raise wire.invalid_string("Name", "control characters (tab, newline)")
        return name

    def _name_taken(
        self, name: str, parent_id: int | None, config: SandboxConfig, exclude: int | None
    ) -> bool:
        for other_id in self._by_name.get(name.casefold(), ()):
            other = self.classes[other_id]
            if other_id == exclude:
                continue
            if config.duplicate_names_case_sensitive and other.name != name:
                continue
            if not other.active and not config.inactive_names_block:
                continue
            if config.duplicate_name_scope == "siblings" and other.parent_id != parent_id:
                continue
            return True
        return False

    def _resolve_parent(
        self,
        ref: str,
        config: SandboxConfig,
        *,
        must_be_active: bool,
        visible_below: int | None,
    ) -> ClassRecord:
        parent = self.find(ref)
        # Batch items cannot see objects created earlier in the same batch (docs/qbo.md, "Batch").
        hidden = parent is not None and visible_below is not None and parent.id >= visible_below
        if parent is None or hidden or (must_be_active and not parent.active):
            raise wire.invalid_reference(config.parent_fault_code, "ParentRef", ref)
        return parent

    def create(
        self, body: dict[str, Any], config: SandboxConfig, *, visible_below: int | None = None
    ) -> ClassRecord:
        """Create a Class from a request body, or raise the QboFaultError QBO would answer."""
        name = self._check_name(body.get("Name"), config)
        active = _truthy(body["Active"]) if body.get("Active") is not None else True
        ref = _parent_ref(body)
        if ref is None and _truthy(body.get("SubClass", False)):
            raise wire.required_missing("ParentRef")
        parent_id: int | None = None
        if ref is not None:
            parent = self._resolve_parent(
                ref, config, must_be_active=True, visible_below=visible_below
            )
            if self.depth(parent) + 1 > config.max_depth:
                raise wire.business_rule(
                    f"Sub-classes can be at most {config.max_depth} levels deep",
                    config.depth_fault_code,
                )
            parent_id = parent.id
        if self._name_taken(name, parent_id, config, exclude=None):
            raise wire.duplicate_name(name)
        now = time.time()
        record = ClassRecord(self.next_id, name, parent_id, active, 0, now, now)
        self.next_id += 1
        self._insert(record)
        return record

    def update(
        self, body: dict[str, Any], config: SandboxConfig, *, visible_below: int | None = None
    ) -> ClassRecord:
        """Apply a full or sparse update (POST with Id and SyncToken) or raise its QboFaultError."""
        record = self._record_to_update(body)
        sparse = _truthy(body.get("sparse", False))
        name, ref, active = self._requested_fields(record, body, config, sparse=sparse)
        if active and not record.active and not config.allow_reactivation:
            raise wire.business_rule("You cannot modify a list element that has been deleted.")
        parent_id = self._new_parent_id(
            record, ref, config, active=active, visible_below=visible_below
        )
        moved = name != record.name or parent_id != record.parent_id
        if (moved or (active and not record.active)) and self._name_taken(
            name, parent_id, config, exclude=record.id
        ):
            raise wire.duplicate_name(name)

        now = time.time()
        if record.active and not active:
            self._deactivate_sub_classes(record, config, now)
        self._remove_indexes(record)
        record.name, record.parent_id, record.active = name, parent_id, active
        record.sync_token += 1
        record.updated = now
        self._add_indexes(record)
        return record

    def _record_to_update(self, body: dict[str, Any]) -> ClassRecord:
        """The class an update names, provided its SyncToken is the current one (else 5010)."""
        record = self.find(body.get("Id"))
        if record is None:
            raise wire.object_not_found(str(body.get("Id")))
        token = body.get("SyncToken")
        if token is None or str(token).strip() == "":
            raise wire.required_missing("SyncToken")
        if str(token).strip() != str(record.sync_token):
            raise wire.stale_object(record.sync_token)
        return record

    def _requested_fields(
        self, record: ClassRecord, body: dict[str, Any], config: SandboxConfig, *, sparse: bool
    ) -> tuple[str, str | None, bool]:
        """(Name, ParentRef value, Active) after the update.

        Full update: writable fields left out become NULL (docs/qbo.md, "Writes and SyncToken");
        sparse: only what is sent changes.
        """
        if sparse and "Name" not in body:
            name = record.name
        else:
            name = self._check_name(body.get("Name"), config)
        ref: str | None
        if sparse and "ParentRef" not in body:
            ref = None if record.parent_id is None else str(record.parent_id)
        else:
            ref = _parent_ref(body)
            if ref is None and not sparse and _truthy(body.get("SubClass", False)):
                raise wire.required_missing("ParentRef")
        if sparse and "Active" not in body:
            active = record.active
        else:
            active = _truthy(body["Active"]) if body.get("Active") is not None else True
            if sparse and not active and record.active and config.sparse_deactivate_ignored:
                # The 2014 report: 200 OK, still active (docs/qbo.md, "The Class entity").
                active = True
        return name, ref, active

    def _new_parent_id(
        self,
        record: ClassRecord,
        ref: str | None,
        config: SandboxConfig,
        *,
        active: bool,
        visible_below: int | None,
    ) -> int | None:
        """The parent's Id after the update, checked for cycles and depth; None for top level."""
        if ref is None:
            return None
        parent = self._resolve_parent(
            ref, config, must_be_active=active, visible_below=visible_below
        )
        if parent.id == record.id or parent.id in self._descendants(record.id):
            raise wire.business_rule("A class cannot be its own parent or sub-class")
        if self.depth(parent) + self._height(record.id) > config.max_depth:
            raise wire.business_rule(
                f"Sub-classes can be at most {config.max_depth} levels deep",
                config.depth_fault_code,
            )
        return parent.id

    def _deactivate_sub_classes(
        self, record: ClassRecord, config: SandboxConfig, now: float
    ) -> None:
        """Apply the configured rule for deactivating a class that has active sub-classes."""
        active_children = [c for c in self._descendants(record.id) if self.classes[c].active]
        if active_children and config.deactivate_parent == "reject":
            raise wire.business_rule("Make the sub-classes of this class inactive first")
        if config.deactivate_parent == "cascade":
            for child_id in active_children:
                child = self.classes[child_id]
                child.active = False
                child.sync_token += 1
                child.updated = now

    # ----------------------------------------------------------------------------- storage

    def _insert(self, record: ClassRecord) -> None:
        self.classes[record.id] = record
        self._add_indexes(record)

    def _add_indexes(self, record: ClassRecord) -> None:
        self._by_name.setdefault(record.name.casefold(), set()).add(record.id)
        self._children.setdefault(record.parent_id, set()).add(record.id)

    def _remove_indexes(self, record: ClassRecord) -> None:
        self._by_name.get(record.name.casefold(), set()).discard(record.id)
        self._children.get(record.parent_id, set()).discard(record.id)

    def remember(self, request_id: str, replay: Replay, retention: float) -> None:
        """Store the answer to a write sent with ``request_id``; old entries age out."""
        self.replays[request_id] = replay
        self.replays.move_to_end(request_id)
        while len(self.replays) > MAX_REPLAYS:
            self.replays.popitem(last=False)
        if retention > 0:
            horizon = time.time() - retention
            while self.replays:
                oldest = next(iter(self.replays.values()))
                if oldest.created >= horizon:
                    break
                self.replays.popitem(last=False)

    def recall(self, request_id: str, retention: float) -> Replay | None:
        """The stored answer for ``request_id`` if it is still remembered."""
        replay = self.replays.get(request_id)
        if replay is not None and retention > 0 and replay.created < time.time() - retention:
            return None
        return replay

    def to_state(self) -> dict[str, Any]:
        """JSON-able snapshot for the state file."""
        return {
            "realm_id": self.realm_id,
            "next_id": self.next_id,
            "classes": [asdict(record) for record in self.classes.values()],
            "replays": {key: asdict(value) for key, value in self.replays.items()},
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Realm:
        """Rebuild a realm saved by ``to_state``."""
        realm = cls(str(data["realm_id"]))
        realm.next_id = int(data["next_id"])
        for item in data.get("classes", []):
            realm._insert(ClassRecord(**item))
        for key, value in data.get("replays", {}).items():
            realm.replays[key] = Replay(**value)
        return realm
