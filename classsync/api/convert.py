"""Pure mapping between the wire messages and domain values."""

from __future__ import annotations

from collections.abc import Iterable

from classsync.api._generated import class_service_pb2 as pb
from classsync.domain import ClassInput, ClassOutcome

# Response texts are part of the wire contract with the Node callers (design.md §1).
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
    """
    outcomes = list(outcomes)
    ids: list[str] = []
    seen: set[str] = set()
    for outcome in outcomes:
        if outcome.succeeded and outcome.id not in seen:
            seen.add(outcome.id)
            ids.append(outcome.id)
    ok = bool(outcomes) and all(o.succeeded for o in outcomes)
    return pb.ClassResponse(
        ids=ids,
        message=SUCCESS_MESSAGE if ok else FAILURE_MESSAGE,
        results=[_result(o) for o in outcomes],
    )


def _result(outcome: ClassOutcome) -> pb.ClassResult:
    return pb.ClassResult(
        stream_index=outcome.stream_index,
        request_index=outcome.request_index,
        id=outcome.id,
        qb_id=outcome.qb_id,
        sync_token=outcome.sync_token,
        status=outcome.status.value,
        error_code=outcome.error_code,
        error_message=outcome.error_message,
        name=outcome.name,
        full_name=outcome.full_name,
    )
