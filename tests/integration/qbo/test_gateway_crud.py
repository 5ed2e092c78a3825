"""QuickbooksGateway vs the sandbox over HTTP: create, read, updates, queries, requestid, batch."""

from __future__ import annotations

import uuid

import pytest

from classsync.domain import (
    ClassWrite,
    QboClass,
    QboDuplicateName,
    QboStaleSyncToken,
)
from tests.integration.qbo.conftest import Stack, unique

pytestmark = pytest.mark.integration


def test_create_then_read_returns_the_same_class(stack: Stack) -> None:
    name = unique("East")
    created = stack.create(name)
    assert created.id
    assert created.sync_token == "0"
    assert (created.name, created.fully_qualified_name, created.active) == (name, name, True)
    assert created.parent_id is None
    assert stack.gateway.read(stack.realm_id, created.id) == created


def test_sub_class_gets_parent_ref_and_qualified_name(stack: Stack) -> None:
    parent = stack.create(unique("Company"))
    child = stack.create("Software Dept", parent_id=parent.id)
    assert child.parent_id == parent.id
    assert child.fully_qualified_name == f"{parent.name}:Software Dept"
    stored = {c["Id"]: c for c in stack.sandbox.admin.classes(stack.realm_id)}
    assert stored[child.id]["SubClass"] is True


def test_full_update_returns_the_new_sync_token_and_a_second_update_works(stack: Stack) -> None:
    created = stack.create()
    renamed = stack.gateway.update(
        stack.realm_id,
        ClassWrite(
            name=unique("Renamed"), active=True, qbo_id=created.id, sync_token=created.sync_token
        ),
    )
    assert int(renamed.sync_token) == int(created.sync_token) + 1
    # The token save() returned is current (docs/qbo.md, "Writes and SyncToken"): using it again
    # must not be stale.
    again = stack.gateway.update(
        stack.realm_id,
        ClassWrite(
            name=renamed.name + " b", active=True, qbo_id=created.id, sync_token=renamed.sync_token
        ),
    )
    assert int(again.sync_token) == int(renamed.sync_token) + 1
    assert stack.gateway.read(stack.realm_id, created.id).name == renamed.name + " b"


def test_full_update_without_parent_moves_a_sub_class_to_the_top(stack: Stack) -> None:
    parent = stack.create()
    child = stack.create(parent_id=parent.id)
    moved = stack.gateway.update(
        stack.realm_id,
        ClassWrite(name=child.name, active=True, qbo_id=child.id, sync_token=child.sync_token),
    )
    assert moved.parent_id is None
    assert moved.fully_qualified_name == child.name


def test_sparse_update_changes_only_what_it_sends(stack: Stack) -> None:
    parent = stack.create()
    child = stack.create(parent_id=parent.id)
    new_name = unique("Sparse")
    updated = stack.gateway.update(
        stack.realm_id,
        ClassWrite(
            name=new_name, active=True, qbo_id=child.id, sync_token=child.sync_token, sparse=True
        ),
    )
    # A sparse update without ParentRef leaves the parent alone (a full one would clear it).
    assert updated.parent_id == parent.id
    assert updated.fully_qualified_name == f"{parent.name}:{new_name}"
    assert updated.sync_token == str(int(child.sync_token) + 1)


def test_deactivate_then_read_shows_inactive(stack: Stack) -> None:
    created = stack.create()
    gone = stack.gateway.update(
        stack.realm_id,
        ClassWrite(
            name=created.name, active=False, qbo_id=created.id, sync_token=created.sync_token
        ),
    )
    assert gone.active is False
    assert stack.gateway.read(stack.realm_id, created.id).active is False


def test_find_by_name_finds_active_inactive_and_quoted_names(stack: Stack) -> None:
    quoted = stack.create(unique("O'Brien's"))
    assert stack.gateway.find_by_name(stack.realm_id, quoted.name) == quoted

    parent = stack.create()
    child = stack.create(parent_id=parent.id)
    assert stack.gateway.find_by_name(stack.realm_id, child.fully_qualified_name) == child

    inactive = stack.create()
    stack.gateway.update(
        stack.realm_id,
        ClassWrite(
            name=inactive.name, active=False, qbo_id=inactive.id, sync_token=inactive.sync_token
        ),
    )
    found = stack.gateway.find_by_name(stack.realm_id, inactive.name)
    assert found is not None
    assert (found.id, found.active) == (inactive.id, False)

    assert stack.gateway.find_by_name(stack.realm_id, unique("Nobody")) is None


def test_same_request_id_twice_creates_one_class(stack: Stack) -> None:
    request_id = str(uuid.uuid4())
    write = ClassWrite(name=unique("Once"), active=True, request_id=request_id)
    first = stack.gateway.create(stack.realm_id, write)
    second = stack.gateway.create(stack.realm_id, write)
    assert second == first
    names = [c["Name"] for c in stack.sandbox.admin.classes(stack.realm_id)]
    assert names.count(write.name) == 1
    counters = stack.counters()
    assert counters["duplicates_prevented"] == 1
    assert counters["classes_created"] == 1


def test_batch_mixes_creates_and_updates_and_keeps_input_order(stack: Stack) -> None:
    existing = stack.create()
    to_update = stack.create()
    stale = stack.create()
    stack.gateway.update(  # bump stale's SyncToken so the batch's copy is old
        stack.realm_id,
        ClassWrite(name=stale.name, active=True, qbo_id=stale.id, sync_token=stale.sync_token),
    )
    writes = [
        ClassWrite(name=unique("Batch new"), active=True, request_id=str(uuid.uuid4())),
        ClassWrite(name=existing.name, active=True, request_id=str(uuid.uuid4())),  # 6240
        ClassWrite(
            name=to_update.name + " v2",
            active=False,
            qbo_id=to_update.id,
            sync_token=to_update.sync_token,
            request_id=str(uuid.uuid4()),
        ),
        ClassWrite(
            name=stale.name,
            active=True,
            qbo_id=stale.id,
            sync_token=stale.sync_token,
            sparse=True,
            request_id=str(uuid.uuid4()),
        ),  # 5010
    ]
    results = stack.gateway.batch_write(stack.realm_id, writes)
    assert len(results) == 4
    assert isinstance(results[0], QboClass)
    assert results[0].name == writes[0].name
    assert isinstance(results[1], QboDuplicateName)
    assert results[1].code == "6240"
    assert isinstance(results[2], QboClass)
    assert (results[2].id, results[2].name, results[2].active) == (
        to_update.id,
        to_update.name + " v2",
        False,
    )
    assert results[2].sync_token == str(int(to_update.sync_token) + 1)
    assert isinstance(results[3], QboStaleSyncToken)
    assert results[3].code == "5010"


def test_batch_rejects_more_than_thirty_items_before_sending(stack: Stack) -> None:
    before = stack.counters().get("requests", 0)
    with pytest.raises(ValueError, match="at most 30"):
        stack.gateway.batch_write(
            stack.realm_id, [ClassWrite(name=f"x{i}", active=True) for i in range(31)]
        )
    assert stack.counters().get("requests", 0) == before
    assert stack.gateway.batch_write(stack.realm_id, []) == []
