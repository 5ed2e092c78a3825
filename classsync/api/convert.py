"""Pure mapping between the wire messages and domain values."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from classsync.api._generated import class_service_pb2 as pb
from classsync.domain import ClassInput, ClassOutcome, SyncStatus
from classsync.sync.reads import ClassLookup

# Response texts are part of the wire contract with the Node callers (protos/class_service.proto).
SUCCESS_MESSAGE = "✅ Classes created and synced successfully"
FAILURE_MESSAGE = "❌ Error during creation or QB sync"


def class_input(message: pb.Class) -> ClassInput:
    """A wire Class as the domain's input record."""
    return ClassInput(
        qb_id=message.qb_id,
        name=message.name,
        full_name=message.full_name,
        is_sub_class=message.is_sub_class,
        is_active=message.is_active,
        domain_source=message.domain_source,
        version_token=message.version_token,
        is_sparse=message.is_sparse,
    )


def class_response(outcomes: Iterable[ClassOutcome]) -> pb.ClassResponse:
    """One ClassResponse covering ``outcomes``: ✅ only if every Class reached QBO.

    ``ids`` lists the local ids of the Classes stored and synced, each once, in stream order.
    ``outcomes`` is read once, so it may be a generator (a long stream's answer is built without
    holding every outcome at once).
    """
    response = pb.ClassResponse()
    seen: set[str] = set()
    count = 0
    ok = True
    for outcome in outcomes:
        count += 1
        _add_result(response, outcome)
        if not outcome.succeeded:
            ok = False
        elif outcome.id not in seen:
            seen.add(outcome.id)
            response.ids.append(outcome.id)
    response.message = SUCCESS_MESSAGE if ok and count else FAILURE_MESSAGE
    return response


def class_lookup(request: pb.GetClassesRequest) -> ClassLookup:
    """The keys of a GetClasses / WatchClasses request, each list in the caller's order."""
    return ClassLookup(
        ids=tuple(request.ids),
        qb_ids=tuple(request.qb_ids),
        full_names=tuple(request.full_names),
    )


def class_result(outcome: ClassOutcome) -> pb.ClassResult:
    """One Class's state as a ClassResult (one message of a WatchClasses stream)."""
    return pb.ClassResult(**_result_fields(outcome))


def read_response(outcomes: Iterable[ClassOutcome]) -> pb.ClassResponse:
    """The GetClasses answer: every result, the ids of the Classes found, and a count per status."""
    response = pb.ClassResponse()
    counts: Counter[str] = Counter()
    for outcome in outcomes:
        counts[outcome.status.value] += 1
        _add_result(response, outcome)
        if outcome.status is not SyncStatus.NOT_FOUND:
            response.ids.append(outcome.id)
    response.message = read_summary(counts)
    return response


def read_summary(counts: Counter[str]) -> str:
    """E.g. '3 Classes found: 2 SYNCED, 1 PENDING; 1 key not found'."""
    not_found = counts[SyncStatus.NOT_FOUND.value]
    found = sum(counts.values()) - not_found
    order = (SyncStatus.SYNCED, SyncStatus.PENDING, SyncStatus.FAILED)
    parts = [f"{counts[s.value]} {s.value}" for s in order if counts[s.value]]
    text = f"{found} {'Class' if found == 1 else 'Classes'} found"
    if parts:
        text += ": " + ", ".join(parts)
    if not_found:
        text += f"; {not_found} {'key' if not_found == 1 else 'keys'} not found"
    return text


def _add_result(response: pb.ClassResponse, outcome: ClassOutcome) -> None:
    # add() builds the message in place: no separate ClassResult object per Class.
    response.results.add(**_result_fields(outcome))


def _result_fields(outcome: ClassOutcome) -> dict[str, Any]:
    return {
        "stream_index": outcome.stream_index,
        "request_index": outcome.request_index,
        "id": outcome.id,
        "qb_id": outcome.qb_id,
        "sync_token": outcome.sync_token,
        "status": outcome.status.value,
        "error_code": outcome.error_code,
        "error_message": outcome.error_message,
        "name": outcome.name,
        "full_name": outcome.full_name,
    }
