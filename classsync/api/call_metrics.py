"""gRPC calls counted by method and status code, and timed, for whoever records metrics."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import grpc


class CallRecorder(Protocol):
    """Where finished calls are reported (classsync.observability.metrics.Metrics)."""

    def grpc_call(self, method: str, code: str, seconds: float) -> None:
        """One call to ``method`` ended with status ``code`` after ``seconds``."""
        ...


def _code(context: grpc.ServicerContext, default: grpc.StatusCode) -> str:
    # context.code() holds what abort()/set_code() set; None when the handler set nothing.
    code = context.code()  # type: ignore[attr-defined]
    return str((code or default).name)


# A caller's deadline fires on its own clock first: its library cancels the stream, and that
# cancel can reach us a little before our copy of the deadline (taken from the grpc-timeout
# header when the call arrived) runs out. A caller gone this close to its deadline left because
# of it, not by choice.
_DEADLINE_SLACK_S = 0.25


def _failure(context: grpc.ServicerContext) -> grpc.StatusCode:
    """The status of a call whose handler raised: a caller that went away (its deadline passed,
    or it cancelled) makes reading its stream raise, which is not the server's UNKNOWN."""
    if context.is_active():
        return grpc.StatusCode.UNKNOWN
    return _gone(context)


def _gone(context: grpc.ServicerContext) -> grpc.StatusCode:
    """Why a caller went away: its deadline (reached, or all but), else it cancelled."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= _DEADLINE_SLACK_S:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED


class CallMetricsInterceptor(grpc.ServerInterceptor):
    """Outermost interceptor: sees every call, refused ones (UNAUTHENTICATED) included."""

    def __init__(self, recorder: CallRecorder) -> None:
        self._recorder = recorder

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:  # unknown method: not counted, so its name never becomes a label
            return None
        method = handler_call_details.method
        for attribute, factory, streaming in _HANDLER_KINDS:
            behaviour = getattr(handler, attribute)
            if behaviour is not None:
                timed = (
                    self._stream(behaviour, method) if streaming else self._unary(behaviour, method)
                )
                return factory(
                    timed,
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler

    def _unary(self, behaviour: Callable[..., Any], method: str) -> Callable[..., Any]:
        def timed(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return behaviour(request, context)
            except Exception:
                code = _failure(context)
                raise
            finally:
                self._recorder.grpc_call(
                    method, _code(context, code), time.perf_counter() - started
                )

        return timed

    def _stream(self, behaviour: Callable[..., Any], method: str) -> Callable[..., Any]:
        def timed(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                yield from behaviour(request, context)
            except GeneratorExit:  # the caller went away before the last reply
                code = _gone(context)
                raise
            except Exception:
                code = _failure(context)
                raise
            finally:
                self._recorder.grpc_call(
                    method, _code(context, code), time.perf_counter() - started
                )

        return timed


# (handler attribute, handler factory, whether the response is a stream)
_HANDLER_KINDS = (
    ("unary_unary", grpc.unary_unary_rpc_method_handler, False),
    ("unary_stream", grpc.unary_stream_rpc_method_handler, True),
    ("stream_unary", grpc.stream_unary_rpc_method_handler, False),
    ("stream_stream", grpc.stream_stream_rpc_method_handler, True),
)
