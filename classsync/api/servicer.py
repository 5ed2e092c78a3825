"""ClassService servicer: turns the calls into IngestService / ClassReadService calls and back."""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterator

import grpc
import structlog

from classsync.api import convert
from classsync.api._generated import class_service_pb2 as pb
from classsync.api._generated import class_service_pb2_grpc as pb_grpc
from classsync.api.realm import call_realm
from classsync.domain import ClassOutcome
from classsync.sync.reads import ClassReadService
from classsync.sync.service import Accepted, IngestService

log = structlog.get_logger(__name__)

RESPONSE_MODE_KEY = "x-classsync-response"
PER_REQUEST = "per-request"
WAIT_KEY = "x-classsync-wait-seconds"
# Leave this much of the caller's deadline to send the answer.
_DEADLINE_MARGIN_S = 0.5
# Default mode answers a whole stream at once: its outcomes are looked up and turned into result
# messages this many at a time, so only the answer itself grows with the stream.
_ANSWER_CHUNK = 1000


class ClassServiceServicer(pb_grpc.ClassServiceServicer):
    """CreateClass: store every Class durably, wait for QBO, answer Node-compatibly.

    GetClasses / WatchClasses: read the Classes' states in the call's realm (never calls QBO).
    """

    def __init__(
        self,
        ingest: IngestService,
        reads: ClassReadService,
        *,
        wait_seconds: float,
        default_realm_id: str,
    ) -> None:
        self._ingest = ingest
        self._reads = reads
        self._wait_seconds = wait_seconds
        self._default_realm_id = default_realm_id

    def CreateClass(  # noqa: N802 - the proto's method name
        self, request_iterator: Iterator[pb.ClassRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.ClassResponse]:
        """Default: one response after the caller half-closes; per-request mode on demand.

        The realm comes from ``x-qbo-realm-id`` (default QBO_REALM_ID); a realm that is not
        connected ends the call with FAILED_PRECONDITION before a single request is read.
        """
        realm_id = call_realm(context, self._ingest.default_realm_id)
        self._ingest.check_realm(realm_id)
        metadata = dict(context.invocation_metadata())
        per_request = metadata.get(RESPONSE_MODE_KEY, "").strip().lower() == PER_REQUEST
        wait_cap = _wait_override(metadata.get(WAIT_KEY), self._wait_seconds)
        pending: list[Accepted] = []
        answered: list[ClassOutcome] = []
        stream_index = 0
        for number, request in enumerate(request_iterator, start=1):
            items = [convert.class_input(c) for c in request.classes]
            results = self._ingest.ingest(
                items, first_stream_index=stream_index, request_number=number, realm_id=realm_id
            )
            stream_index += len(items)
            accepted = [r for r in results if isinstance(r, Accepted)]
            refused = [r for r in results if isinstance(r, ClassOutcome)]
            log.info(
                "class_request_stored",
                realm_id=realm_id,
                request=number,
                stored=len(accepted),
                refused=len(refused),
            )
            if per_request:
                settled = self._settle(accepted, context, wait_cap)
                yield convert.class_response(_in_order(refused, settled))
            else:
                pending.extend(accepted)
                answered.extend(refused)
        if not per_request:
            yield convert.class_response(self._answer_stream(answered, pending, context, wait_cap))

    def GetClasses(  # noqa: N802 - the proto's method name
        self, request: pb.GetClassesRequest, context: grpc.ServicerContext
    ) -> pb.ClassResponse:
        """The current state of each Class asked for."""
        realm_id = call_realm(context, self._default_realm_id)
        outcomes = self._reads.get(realm_id, convert.class_lookup(request))
        return convert.read_response(outcomes)

    def WatchClasses(  # noqa: N802 - the proto's method name
        self, request: pb.GetClassesRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ClassResult]:
        """The current state of each Class asked for, then each one as it settles."""
        realm_id = call_realm(context, self._default_realm_id)
        news = self._reads.watch(
            realm_id,
            convert.class_lookup(request),
            is_active=context.is_active,
            time_remaining=context.time_remaining,
        )
        for outcome in news:
            yield convert.class_result(outcome)

    def _answer_stream(
        self,
        refused: list[ClassOutcome],
        accepted: list[Accepted],
        context: grpc.ServicerContext,
        wait_cap: float,
    ) -> Iterator[ClassOutcome]:
        """Every outcome of the stream, in stream order, settled a chunk at a time.

        One answer covers the whole stream, so building it all at once held several objects per
        Class (states, outcomes, a sorted copy, result messages): memory grew with stream length
        (docs/performance.md). Chunks share one deadline, so the wait is the same as settling
        everything together: Classes synced meanwhile are found by each chunk's first look.
        """
        deadline = time.monotonic() + self._timeout(context, wait_cap)

        def settled() -> Iterator[ClassOutcome]:
            for start in range(0, len(accepted), _ANSWER_CHUNK):
                chunk = accepted[start : start + _ANSWER_CHUNK]
                timeout = max(0.0, deadline - time.monotonic())
                yield from self._ingest.settle(chunk, timeout=timeout, is_active=context.is_active)

        return heapq.merge(sorted(refused, key=_position), settled(), key=_position)

    def _settle(
        self, accepted: list[Accepted], context: grpc.ServicerContext, wait_cap: float
    ) -> list[ClassOutcome]:
        timeout = self._timeout(context, wait_cap)
        return self._ingest.settle(accepted, timeout=timeout, is_active=context.is_active)

    @staticmethod
    def _timeout(context: grpc.ServicerContext, wait_cap: float) -> float:
        remaining = context.time_remaining()
        if remaining is None:
            return wait_cap
        return max(0.0, min(wait_cap, remaining - _DEADLINE_MARGIN_S))


def _wait_override(value: str | None, default: float) -> float:
    """A caller may ask for a shorter wait (e.g. 0: answer as soon as the Classes are stored)."""
    if value is None:
        return default
    try:
        return max(0.0, min(default, float(value)))
    except ValueError:
        return default


def _position(outcome: ClassOutcome) -> tuple[bool, int]:
    # Stream order; whole-request refusals (stream_index -1, e.g. an empty request) last.
    return (outcome.stream_index < 0, outcome.stream_index)


def _in_order(refused: list[ClassOutcome], settled: list[ClassOutcome]) -> list[ClassOutcome]:
    return sorted([*refused, *settled], key=_position)
