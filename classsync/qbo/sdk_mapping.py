"""ClassWrite/QboClass to and from python-quickbooks ``Class`` objects, queries and batch payloads."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from quickbooks import QuickBooks
from quickbooks.objects.base import Ref
from quickbooks.objects.trackingclass import Class

from classsync.domain import (
    ChangePage,
    ClassWrite,
    QboClass,
    QboError,
    QboOutcomeUnknown,
    RemoteClass,
)
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


def qbo_time(value: datetime) -> str:
    """A time for ``changedSince``, with an explicit UTC offset (never read as QBO's local time)."""
    return value.replace(tzinfo=UTC, microsecond=0).isoformat()


def parse_qbo_time(text: object) -> datetime | None:
    """A QBO timestamp (``time``, ``MetaData.LastUpdatedTime``) as naive UTC; None if unreadable.

    A value without an offset is taken as UTC.
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        # A number is read as epoch milliseconds (the form some QBO answers use for ``time``).
        return datetime.fromtimestamp(text / 1000, tz=UTC).replace(tzinfo=None)
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def remote_class(data: Mapping[str, Any]) -> RemoteClass:
    """One Class of a CDC or query answer, with its LastUpdatedTime."""
    meta = data.get("MetaData") or {}
    last_updated = parse_qbo_time(meta.get("LastUpdatedTime")) if isinstance(meta, dict) else None
    return RemoteClass(qbo=to_qbo_class(Class.from_json(dict(data))), last_updated=last_updated)


def _answered_at(answer: Mapping[str, Any]) -> datetime:
    # QBO stamps every answer with its own clock; our clock only stands in if it did not.
    return parse_qbo_time(answer.get("time")) or datetime.now(UTC).replace(tzinfo=None)


def cdc_page(answer: Mapping[str, Any]) -> ChangePage:
    """The Classes of a CDC answer (``CDCResponse[0].QueryResponse[*].Class``) and its time."""
    classes: list[RemoteClass] = []
    for cdc in answer.get("CDCResponse") or []:
        for entry in (cdc or {}).get("QueryResponse") or []:
            classes += [
                remote_class(item)
                for item in (entry or {}).get("Class") or []
                # A Class cannot be deleted, only deactivated; a "Deleted" entry (documented for
                # other entities) carries no fields to apply (docs/qbo.md, "CDC and webhooks").
                if isinstance(item, dict) and item.get("status") != "Deleted"
            ]
    return ChangePage(classes=classes, answered_at=_answered_at(answer))


def query_page(answer: Mapping[str, Any]) -> ChangePage:
    """The Classes of a query answer (``QueryResponse.Class``) and its time."""
    items = (answer.get("QueryResponse") or {}).get("Class") or []
    return ChangePage(classes=[remote_class(i) for i in items], answered_at=_answered_at(answer))


def all_classes_query(start_position: int, max_results: int) -> str:
    """Every Class, active and inactive (a plain query answers active ones only), in Id order."""
    # Only integers are interpolated; QBO queries have no bind parameters.
    return (
        "select * from Class where Active IN (true, false) ORDERBY Id "  # noqa: S608
        f"STARTPOSITION {int(start_position)} MAXRESULTS {int(max_results)}"
    )


__all__ = [
    "MAX_BATCH_ITEMS",
    "all_classes_query",
    "batch_request_body",
    "batch_request_id",
    "batch_results",
    "cdc_page",
    "class_for",
    "escape_query_value",
    "find_by_name_queries",
    "parse_qbo_time",
    "qbo_time",
    "query_page",
    "remote_class",
    "save_class",
    "to_qbo_class",
]
