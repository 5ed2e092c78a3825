"""Assembles the gRPC server: servicer, health, reflection, interceptors, limits, TLS."""

from __future__ import annotations

from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from classsync.api._generated import class_service_pb2 as pb
from classsync.api._generated import class_service_pb2_grpc as pb_grpc
from classsync.api.call_metrics import CallMetricsInterceptor, CallRecorder
from classsync.api.interceptors import CallContextInterceptor
from classsync.api.servicer import ClassServiceServicer

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ClassService"].full_name
# Health name that is NOT_SERVING while the QBO realm is disconnected (its token was refused).
QBO_HEALTH_NAME = "classsync.qbo"


class BuiltServer:
    """An unstarted gRPC server, the port it bound, and its health servicer."""

    def __init__(
        self, server: grpc.Server, port: int, health_servicer: health.HealthServicer
    ) -> None:
        self.server = server
        self.port = port
        self.health = health_servicer

    def set_serving(self, serving: bool) -> None:
        """Report SERVING / NOT_SERVING for the whole server and ClassService."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME):
            self.health.set(name, status)

    def set_qbo_connected(self, connected: bool) -> None:
        """Report SERVING / NOT_SERVING under ``classsync.qbo``."""
        self.health.set(
            QBO_HEALTH_NAME,
            health_pb2.HealthCheckResponse.SERVING
            if connected
            else health_pb2.HealthCheckResponse.NOT_SERVING,
        )


def build_server(
    servicer: ClassServiceServicer,
    *,
    address: str,
    max_workers: int,
    max_message_bytes: int,
    auth_tokens: list[str],
    tls_cert_file: str | None = None,
    tls_key_file: str | None = None,
    call_recorder: CallRecorder | None = None,
) -> BuiltServer:
    """Build (not start) the server and bind ``address`` (port 0 picks a free port)."""
    interceptors: list[grpc.ServerInterceptor] = [CallContextInterceptor(auth_tokens)]
    if call_recorder is not None:
        interceptors.insert(0, CallMetricsInterceptor(call_recorder))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        interceptors=interceptors,
        # A stream holds one worker thread for its whole life; refuse calls beyond the pool
        # instead of queueing them silently.
        maximum_concurrent_rpcs=max_workers,
        options=[
            # gRPC's default SO_REUSEPORT would let a second server bind this address too and
            # take half of the calls silently; a port in use must refuse to start instead.
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max(max_message_bytes, 64 * 1024 * 1024)),
        ],
    )
    pb_grpc.add_ClassServiceServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    if tls_cert_file and tls_key_file:
        credentials = grpc.ssl_server_credentials(
            [(Path(tls_key_file).read_bytes(), Path(tls_cert_file).read_bytes())]
        )
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        msg = f"could not bind gRPC address {address}"
        raise RuntimeError(msg)
    built = BuiltServer(server, port, health_servicer)
    built.set_serving(True)
    return built
