"""ClassWrite/QboClass <-> python-quickbooks objects, query escaping and batch payloads (no I/O)."""

from __future__ import annotations

import json

import pytest

from classsync.domain import (
    ClassWrite,
    QboClass,
    QboDuplicateName,
    QboOutcomeUnknown,
)
from classsync.qbo.sdk_mapping import (
    batch_request_body,
    batch_request_id,
    batch_results,
    class_for,
    escape_query_value,
    find_by_name_queries,
)

pytestmark = pytest.mark.unit


def test_query_values_escape_backslash_then_quote() -> None:
    assert escape_query_value("O'Brien\\East") == "O\\'Brien\\\\East"
    active, inactive = find_by_name_queries("Sales:O'Brien")
    assert active == "select * from Class where FullyQualifiedName = 'Sales:O\\'Brien'"
    assert inactive == active + " AND Active = false"


def test_create_carries_no_id_nor_sync_token_and_a_parent_ref() -> None:
    body = json.loads(class_for(ClassWrite(name="East", active=True, parent_id="7")).to_json())
    assert body["Name"] == "East"
    assert body["SubClass"] is True
    assert body["ParentRef"]["value"] == "7"
    assert body.get("Id") is None
    assert body.get("SyncToken") is None


def test_sparse_update_sends_only_what_changes() -> None:
    write = ClassWrite(name="East", active=False, qbo_id="12", sync_token="3", sparse=True)
    body = json.loads(class_for(write).to_json())
    assert (body["Id"], body["SyncToken"], body["sparse"]) == ("12", "3", True)
    assert body.get("SubClass") is None
    assert body["Active"] is False


def test_an_update_without_sync_token_is_refused() -> None:
    with pytest.raises(ValueError, match="SyncToken"):
        class_for(ClassWrite(name="East", active=True, qbo_id="12"))


def test_batch_request_id_is_deterministic_and_needs_every_item_id() -> None:
    writes = [ClassWrite(name=n, active=True, request_id=f"r-{n}") for n in ("A", "B")]
    first = batch_request_id(writes)
    assert first is not None
    assert len(first) <= 36
    assert batch_request_id(list(writes)) == first
    assert batch_request_id(writes[::-1]) != first
    assert batch_request_id([*writes, ClassWrite(name="C", active=True)]) is None


def test_batch_body_numbers_items_in_input_order() -> None:
    writes = [
        ClassWrite(name="A", active=True),
        ClassWrite(name="B", active=True, qbo_id="5", sync_token="0"),
    ]
    items = json.loads(batch_request_body(writes))["BatchItemRequest"]
    assert [(i["bId"], i["operation"], i["Class"]["Name"]) for i in items] == [
        ("0", "create", "A"),
        ("1", "update", "B"),
    ]


def test_batch_results_follow_input_order_with_faults_and_gaps() -> None:
    answer = {
        "BatchItemResponse": [
            {"bId": "2", "Fault": {"Error": [{"code": "6240", "Message": "Duplicate Name"}]}},
            {"bId": "0", "Class": {"Id": "9", "SyncToken": "0", "Name": "A", "Active": True}},
        ]
    }
    ok, missing, duplicate = batch_results(answer, 3)
    assert isinstance(ok, QboClass)
    assert (ok.id, ok.name, ok.parent_id) == ("9", "A", None)
    assert isinstance(missing, QboOutcomeUnknown)
    assert isinstance(duplicate, QboDuplicateName)
    assert duplicate.code == "6240"
