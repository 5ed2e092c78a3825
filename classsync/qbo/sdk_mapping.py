"""ClassWrite/QboClass to and from python-quickbooks ``Class`` objects, queries and batch payloads."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from quickbooks import QuickBooks
from quickbooks.objects.base import Ref
from quickbooks.objects.trackingclass import Class

from classsync.domain import ClassWrite, QboClass, QboError, QboOutcomeUnknown
from classsync.qbo.errors import from_fault

# Recommended maximum items per batch request (docs/qbo.md, "Batch").
MAX_BATCH_ITEMS = 30
# Fixed namespace so a batch made of the same item request ids always gets the same requestid.
_BATCH_NAMESPACE = uuid.UUID("6f1d2d43-5b7e-4f55-9a4c-3f1e0c9a2b61")


def escape_query_value(value: str) -> str:
    """Escape a string for a QBO query literal: backslash, then ``'`` (docs/qbo.md, "The Class entity")."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def find_by_name_queries(fully_qualified_name: str) -> tuple[str, str]:
    """The queries for a FullyQualifiedName: active Classes first, then inactive ones.

    A plain query returns active records only (docs/qbo.md, "The Class entity").
    """
    where = f"FullyQualifiedName = '{escape_query_value(fully_qualified_name)}'"
    return (
        # Values are escaped above; QBO queries have no bind parameters.
        f"select * from Class where {where}",  # noqa: S608
        f"select * from Class where {where} AND Active = false",  # noqa: S608
    )


def to_qbo_class(obj: Any) -> QboClass:
    """The domain view of a python-quickbooks ``Class`` (or anything with the same attributes)."""
    parent = getattr(obj, "ParentRef", None)
    parent_id = parent.get("value") if isinstance(parent, dict) else getattr(parent, "value", None)
    name = str(obj.Name or "")
    return QboClass(
        id=str(obj.Id),
        sync_token=str(obj.SyncToken),
        name=name,
        fully_qualified_name=str(getattr(obj, "FullyQualifiedName", "") or name),
        active=bool(obj.Active),
        parent_id=str(parent_id) if parent_id else None,
    )


def _parent_ref(parent_id: str) -> Ref:
    ref = Ref()
    # The documented body is just {"value": "<Id>"} (docs/qbo.md, "The Class entity"); None drops
    # the rest.
    ref.value = parent_id
    ref.name = None
    ref.type = None
    return ref


def class_for(write: ClassWrite) -> Class:
    """The python-quickbooks object for one write (create, full update or sparse update)."""
    obj = Class()
    obj.Name = write.name
    obj.Active = write.active
    # Read-only (docs/qbo.md, "The Class entity"): python-quickbooks would send "" otherwise.
    obj.FullyQualifiedName = None
    if write.qbo_id is None:
        obj.SyncToken = None  # creates carry no SyncToken
        obj.SubClass = write.parent_id is not None
        if write.parent_id is not None:
            obj.ParentRef = _parent_ref(write.parent_id)
        return obj
    if write.sync_token is None:
        raise ValueError("an update needs the Class's current SyncToken")
    obj.Id = write.qbo_id
    # QBO documents SyncToken as a string (docs/qbo.md, "Writes and SyncToken").
    obj.SyncToken = str(write.sync_token)
    if write.sparse:
        # Sparse: Id, SyncToken, sparse=true and only the fields we mean to change
        # (docs/qbo.md, "Writes and SyncToken").
        obj.sparse = True
        obj.SubClass = None
        obj.domain = None
        if write.parent_id is not None:
            obj.ParentRef = _parent_ref(write.parent_id)
        return obj
    # Full update: every writable field, since omitted ones are set to NULL.
    obj.sparse = False
    obj.SubClass = write.parent_id is not None
    if write.parent_id is not None:
        obj.ParentRef = _parent_ref(write.parent_id)
    return obj


def save_class(obj: Class, qb: QuickBooks, request_id: str | None) -> Any:
    """Save; return the object QBO sent back (``obj`` keeps a stale SyncToken).

    docs/qbo.md, "python-quickbooks": ``save()`` decides create-vs-update with ``int(Id)``, while
    QBO Ids are opaque strings, so a non-numeric Id is updated directly.
    """
    if obj.Id is None or str(obj.Id).isdigit():
        return obj.save(qb=qb, request_id=request_id)
    result = qb.update_object("Class", obj.to_json(), request_id=request_id)
    return Class.from_json(result["Class"])


def batch_request_body(writes: Sequence[ClassWrite]) -> str:
    """The JSON body of a batch of creates/updates, with bIds "0".."n" in input order."""
    items = [
        {
            "bId": str(index),
            "operation": "create" if write.qbo_id is None else "update",
            "Class": json.loads(class_for(write).to_json()),
        }
        for index, write in enumerate(writes)
    ]
    return json.dumps({"BatchItemRequest": items})


def batch_request_id(writes: Sequence[ClassWrite]) -> str | None:
    """A deterministic batch requestid (<= 36 chars) when every item has a request id.

    Retrying the same batch is then recognised as the same request (docs/qbo.md, "requestid and
    duplicates").
    """
    ids = [w.request_id for w in writes]
    if not ids or any(not i for i in ids):
        return None
    return str(uuid.uuid5(_BATCH_NAMESPACE, "\n".join(str(i) for i in ids)))


def _batch_item_result(item: Mapping[str, Any] | None) -> QboClass | QboError:
    if item is None:
        return QboOutcomeUnknown("QBO's batch answer has no result for this item")
    if "Fault" in item:
        errors = (item.get("Fault") or {}).get("Error") or [{}]
        first = errors[0] if isinstance(errors[0], dict) else {}
        return from_fault(first.get("code"), first.get("Message", ""), first.get("Detail", ""))
    if "Class" in item:
        return to_qbo_class(Class.from_json(item["Class"]))
    return QboOutcomeUnknown("QBO's batch item answer holds no Class")


def batch_results(answer: Mapping[str, Any], count: int) -> list[QboClass | QboError]:
    """Per-item results of a batch answer, in input order; faults classified, not raised."""
    by_bid = {
        str(item.get("bId")): item
        for item in (answer.get("BatchItemResponse") or [])
        if isinstance(item, dict)
    }
    return [_batch_item_result(by_bid.get(str(index))) for index in range(count)]


__all__ = [
    "MAX_BATCH_ITEMS",
    "batch_request_body",
    "batch_request_id",
    "batch_results",
    "class_for",
    "escape_query_value",
    "find_by_name_queries",
    "save_class",
    "to_qbo_class",
]
