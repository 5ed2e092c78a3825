"""Cross-cutting gRPC concerns: per-call log context, caller authentication, error → status."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import grpc
import structlog

from classsync.domain import ClasssyncError

log = structlog.get_logger(__name__)

CORRELATION_KEY = "x-request-id"
_OPEN_METHODS = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def _status(error: ClasssyncError) -> grpc.StatusCode:
    return getattr(grpc.StatusCode, error.grpc_status, grpc.StatusCode.INTERNAL)


class CallContextInterceptor(grpc.ServerInterceptor):
    """Binds rpc/peer/request_id for the whole call and is the only place that ends calls with errors.

    Context is bound explicitly per call (not inherited): grpcio's per-RPC contextvars behaviour
    has changed between releases.
    """

    def __init__(self, auth_tokens: list[str]) -> None:
        self._auth_tokens = [t.encode() for t in auth_tokens]

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        metadata = dict(handler_call_details.invocation_metadata or ())
        call = _Call(
            method=method,
            request_id=str(metadata.get(CORRELATION_KEY) or uuid.uuid4()),
            authorised=self._authorised(method, metadata),
        )
        for attribute, factory, streaming in _HANDLER_KINDS:
            behaviour = getattr(handler, attribute)
            if behaviour is not None:
                guarded = _guard_stream(behaviour, call) if streaming else _guard(behaviour, call)
                return factory(
                    guarded,
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler

    def _authorised(self, method: str, metadata: dict[str, Any]) -> bool:
        if not self._auth_tokens or method.startswith(_OPEN_METHODS):
            return True
        header = str(metadata.get("authorization", ""))
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return False
        candidate = presented.strip().encode()
        # Compare against every token in constant time, without stopping at the first match.
        matched = False
        for token in self._auth_tokens:
            matched |= hmac.compare_digest(candidate, token)
        return matched


@dataclass(frozen=True, slots=True)
class _Call:
    """What the interceptor learnt about one call before it runs."""

    method: str
    request_id: str
    authorised: bool

    def bind_log_context(self, context: grpc.ServicerContext) -> AbstractContextManager[None]:
        """Bind rpc/peer/request_id to every log line of the call."""
        return structlog.contextvars.bound_contextvars(
            rpc=self.method, peer=context.peer(), request_id=self.request_id
        )

    def refuse_unless_authorised(self, context: grpc.ServicerContext) -> None:
        """End the call with UNAUTHENTICATED when the caller's bearer token was not accepted."""
        if not self.authorised:
            log.warning("call_unauthenticated")
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")


def _guard(behaviour: Callable[..., Any], call: _Call) -> Callable[..., Any]:
    """A unary-response behaviour with the call's log context, authentication and error status."""

    def unary(request: Any, context: grpc.ServicerContext) -> Any:
        with call.bind_log_context(context):
            call.refuse_unless_authorised(context)
            try:
                return behaviour(request, context)
            except ClasssyncError as error:
                log.warning("call_failed", error=str(error), status=error.grpc_status)
                context.abort(_status(error), str(error))

    return unary


def _guard_stream(behaviour: Callable[..., Any], call: _Call) -> Callable[..., Any]:
    """The same as ``_guard`` for a streaming response, logging the call's start and end."""

    def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        with call.bind_log_context(context):
            call.refuse_unless_authorised(context)
            log.info("call_started")
            try:
                yield from behaviour(request, context)
            except ClasssyncError as error:
                log.warning("call_failed", error=str(error), status=error.grpc_status)
                context.abort(_status(error), str(error))
            except Exception:
                if not context.is_active():  # the caller left (deadline, cancel) mid-stream
                    log.info("call_finished", cancelled=True)
                raise
            log.info("call_finished", cancelled=not context.is_active())

    return stream


# (handler attribute, handler factory, whether the response is a stream)
_HANDLER_KINDS = (
    ("unary_unary", grpc.unary_unary_rpc_method_handler, False),
    ("unary_stream", grpc.unary_stream_rpc_method_handler, True),
    ("stream_unary", grpc.stream_unary_rpc_method_handler, False),
    ("stream_stream", grpc.stream_stream_rpc_method_handler, True),
)
