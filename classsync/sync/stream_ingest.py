"""A stream's ClassRequests stored one after another, the next one checked while one commits.

Storing a ClassRequest mostly waits for the database (look-ups, COPY, a durable commit), and
Python gives the interpreter to other threads while it waits. So from a stream's second
ClassRequest on, each is stored by a thread of the stream's own while the call's thread reads
and decodes the next ClassRequest, validates it, and builds the previous answer: a long stream
uses both cores (docs/performance.md).

What does not change:
- ClassRequests are stored in stream order, one transaction each, and request N+1 is stored
  only after request N committed (N+1 may name a parent N created).
- Answers come in stream order. A failed store ends the stream at that request, as before:
  every earlier request was answered, that one and later ones were not stored, and the error is
  raised in the call's thread. A request refused as too large is raised after the answer of the
  request before it.
- The first ClassRequest is stored in the call's thread: a one-request stream (the one-Class
  call) never waits for a thread hand-off.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import structlog

from classsync.domain import ClassInput, ClassOutcome
from classsync.sync.service import Accepted, CheckedRequest, IngestService

log = structlog.get_logger(__name__)

Results = list[Accepted | ClassOutcome]


def ingest_stream(
    ingest: IngestService, requests: Iterable[Sequence[ClassInput]], *, realm_id: str
) -> Iterator[Results]:
    """Store each ClassRequest of ``requests`` and yield its results, in stream order."""
    numbered = enumerate(requests, start=1)
    first = next(numbered, None)
    if first is None:
        return
    _, items = first
    yield ingest.ingest(items, first_stream_index=0, request_number=1, realm_id=realm_id)
    stream_index = len(items)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-stream") as store_thread:
        in_flight: Future[Results] | None = None
        try:
            for number, items in numbered:
                # Runs while the previous request is stored (or its answer is sent).
                checked = _check(ingest, items, stream_index, number, realm_id)
                stream_index += len(items)
                pending, in_flight = in_flight, None
                previous = None if pending is None else pending.result()
                if isinstance(checked, CheckedRequest):
                    in_flight = _submit(store_thread, ingest.store, checked)
                if previous is not None:
                    yield previous
                if isinstance(checked, Exception):
                    raise checked
            if in_flight is not None:
                pending, in_flight = in_flight, None
                yield pending.result()
        finally:
            _finish_quietly(in_flight)


def _check(
    ingest: IngestService,
    items: Sequence[ClassInput],
    stream_index: int,
    number: int,
    realm_id: str,
) -> CheckedRequest | Exception:
    # A refusal (RequestTooLarge) is kept, not raised: the request before it is answered first.
    try:
        return ingest.check(
            items, first_stream_index=stream_index, request_number=number, realm_id=realm_id
        )
    except Exception as error:  # raised again after the previous answer
        return error


def _submit(
    executor: ThreadPoolExecutor,
    store: Callable[[CheckedRequest], Results],
    request: CheckedRequest,
) -> Future[Results]:
    # The call's context (structlog's bound call id, realm) goes with the request.
    context = contextvars.copy_context()
    return executor.submit(context.run, store, request)


def _finish_quietly(in_flight: Future[Results] | None) -> None:
    """The call ended (cancelled, or failed elsewhere) with a request being stored: let it
    finish. Its Classes are committed or not as one; committed ones sync unanswered, as when a
    caller leaves mid-request."""
    if in_flight is None:
        return
    error = in_flight.exception()
    if error is not None:
        log.warning("ingest_unanswered_request_failed", error=type(error).__name__)
