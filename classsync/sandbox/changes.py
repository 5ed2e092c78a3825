"""Class writes that announce themselves: every Class they change gets a webhook event."""

from __future__ import annotations

from typing import Any

from classsync.sandbox.realm import ClassRecord, Realm
from classsync.sandbox.state import SandboxState


def create(
    state: SandboxState, realm: Realm, body: dict[str, Any], *, visible_below: int | None = None
) -> ClassRecord:
    """Create a Class under QBO's rules (or raise its QboFaultError) and announce it."""
    record = realm.create(body, state.config, visible_below=visible_below)
    state.class_changed(realm, record, created=True)
    return record


def update(
    state: SandboxState, realm: Realm, body: dict[str, Any], *, visible_below: int | None = None
) -> ClassRecord:
    """Update a Class under QBO's rules (or raise its QboFaultError) and announce it.

    Deactivating a parent may deactivate its sub-classes too (option deactivate_parent); with
    rename_touches_sub_classes, a rename or move bumps them too. Each sub-class whose SyncToken
    moved is announced as well, as CDC reports it. By default a rename or move changes only the
    FullyQualifiedName of sub-classes (computed on read), so nothing reports them.
    """
    target = realm.find(body.get("Id"))
    if target is None:
        return realm.update(body, state.config, visible_below=visible_below)  # raises 610
    place = (target.name, target.parent_id)
    below = {child: realm.classes[child].sync_token for child in realm.descendants(target.id)}
    record = realm.update(body, state.config, visible_below=visible_below)
    state.class_changed(realm, record)
    renamed = place != (record.name, record.parent_id)
    for child_id, token in below.items():
        child = realm.classes[child_id]
        if child.sync_token == token and renamed and state.config.rename_touches_sub_classes:
            child.sync_token += 1
            child.updated = record.updated
        if child.sync_token != token:
            state.class_changed(realm, child)
    return record
