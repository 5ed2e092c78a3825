"""ClassService servicer: turns the bidi stream into IngestService calls and back."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import structlog

from classsync.api import convert
from classsync.api._generated import class_service_pb2 as pb
from classsync.api._generated import class_service_pb2_grpc as pb_grpc
from classsync.domain import ClassOutcome
from classsync.sync.service import Accepted, IngestService

log = structlog.get_logger(__name__)

RESPONSE_MODE_KEY = "x-classsync-response"
PER_REQUEST = "per-request"
WAIT_KEY = "x-classsync-wait-seconds"
# Leave this much of the caller's deadline to send the answer.
_DEADLINE_MARGIN_S = 0.5


class ClassServiceServicer(pb_grpc.ClassServiceServicer):
    """CreateClass: store every Class durably, wait for QBO, answer Node-compatibly."""

    def __init__(self, ingest: IngestService, *, wait_seconds: float) -> None:
        self._ingest = ingest
        self._wait_seconds = wait_seconds

    def CreateClass(  # noqa: N802 - the proto's method name
        self, request_iterator: Iterator[pb.ClassRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.ClassResponse]:
        """Default: one response after the caller half-closes; per-request mode on demand."""
        metadata = dict(context.invocation_metadata())
        per_request = metadata.get(RESPONSE_MODE_KEY, "").strip().lower() == PER_REQUEST
        wait_cap = _wait_override(metadata.get(WAIT_KEY), self._wait_seconds)
        pending: list[Accepted] = []
        answered: list[ClassOutcome] = []
        stream_index = 0
        for number, request in enumerate(request_iterator, start=1):
            items = [convert.class_input(c) for c in request.classes]
            results = self._ingest.ingest(
                items, first_stream_index=stream_index, request_number=number
            )
            stream_index += len(items)
            accepted = [r for r in results if isinstance(r, Accepted)]
            refused = [r for r in results if isinstance(r, ClassOutcome)]
            log.info(
                "class_request_stored", request=number, stored=len(accepted), refused=len(refused)
            )
            if per_request:
                settled = self._settle(accepted, context, wait_cap)
                yield convert.class_response(_in_order(refused, settled))
            else:
                pending.extend(accepted)
                answered.extend(refused)
        if not per_request:
            settled = self._settle(pending, context, wait_cap)
            yield convert.class_response(_in_order(answered, settled))

    def _settle(
        self, accepted: list[Accepted], context: grpc.ServicerContext, wait_cap: float
    ) -> list[ClassOutcome]:
        remaining = context.time_remaining()
        timeout = wait_cap
        if remaining is not None:
            timeout = max(0.0, min(timeout, remaining - _DEADLINE_MARGIN_S))
        return self._ingest.settle(accepted, timeout=timeout, is_active=context.is_active)


def _wait_override(value: str | None, default: float) -> float:
    """A caller may ask for a shorter wait (e.g. 0: answer as soon as the Classes are stored)."""
    if value is None:
        return default
    try:
        return max(0.0, min(default, float(value)))
    except ValueError:
        return default


def _in_order(refused: list[ClassOutcome], settled: list[ClassOutcome]) -> list[ClassOutcome]:
    return sorted([*refused, *settled], key=lambda o: (o.stream_index < 0, o.stream_index))
