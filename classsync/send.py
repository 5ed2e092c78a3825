"""The gRPC client commands: `classsync send` (stream a payload, print the reply), `classsync health`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


# --- send --------------------------------------------------------------------------------------
def load_payload(path: Path) -> list[dict[str, Any]]:
    """Read a payload file: one ClassRequest ({"classes": [...]}), a list of them, or a list of Classes."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list) and all(isinstance(x, dict) and "classes" in x for x in data):
        return data
    if isinstance(data, list):
        return [{"classes": data}]
    msg = f"{path}: expected an object with 'classes' or a list"
    raise ValueError(msg)


def cmd_send(args: argparse.Namespace) -> int:
    """Stream a JSON payload to the server and print the reply (as JSON)."""
    import grpc
    from google.protobuf import json_format

    from classsync.api._generated import class_service_pb2 as pb
    from classsync.api._generated import class_service_pb2_grpc as pb_grpc
    from classsync.preflight import load_settings

    settings = load_settings()
    try:
        payload = load_payload(Path(args.file))
        requests = [json_format.ParseDict(r, pb.ClassRequest()) for r in payload]
    except (OSError, ValueError, json_format.ParseError) as exc:
        # json's and protobuf's errors are ValueErrors that name the line or the field.
        print(f"classsync send: cannot use {args.file}: {exc}", file=sys.stderr)
        return 2
    address = args.address or settings.grpc_address
    metadata = []
    if args.realm:
        metadata.append(("x-qbo-realm-id", args.realm))
    if args.per_request:
        metadata.append(("x-classsync-response", "per-request"))
    if args.token:
        metadata.append(("authorization", f"Bearer {args.token}"))
    ok = True
    with _channel(address, tls=args.tls or bool(args.ca_file), ca_file=args.ca_file) as channel:
        stub = pb_grpc.ClassServiceStub(channel)
        try:
            for reply in stub.CreateClass(iter(requests), metadata=metadata, timeout=args.timeout):
                body = json_format.MessageToDict(reply, preserving_proto_field_name=True)
                print(json.dumps(body, ensure_ascii=False, indent=2))
                ok = ok and reply.message.startswith("✅")
        except grpc.RpcError as error:
            hint = _NEXT_STEP.get(error.code().name, "").format(address=address, t=args.timeout)
            print(f"classsync send: {error.code().name}: {error.details()}{hint}", file=sys.stderr)
            return 1
    return 0 if ok else 1


# What to do next after the failures a caller can fix itself.
_NEXT_STEP = {
    "UNAVAILABLE": (
        "\n  is `classsync serve` running on {address}? Start it (`make run`), or give its "
        "address with --address or GRPC_ADDRESS; use --tls or --ca-file exactly when it has TLS"
    ),
    "UNAUTHENTICATED": "\n  the server requires a caller token: pass one of its GRPC_AUTH_TOKENS with --token",
    "DEADLINE_EXCEEDED": (
        "\n  no complete reply within {t:g} s (--timeout); Classes already stored still sync: "
        "see `classsync status`, or send again (resending never duplicates)"
    ),
}


def _channel(address: str, *, tls: bool, ca_file: str | None) -> Any:
    """A plaintext channel, or TLS trusting ``ca_file`` (else the system's roots)."""
    import grpc

    if not tls:
        return grpc.insecure_channel(address)
    roots = None
    if ca_file:
        from classsync.preflight import ConfigError

        try:
            roots = Path(ca_file).read_bytes()
        except OSError as exc:
            msg = f"--ca-file {ca_file} cannot be read ({exc.strerror})"
            raise ConfigError(msg) from exc
    return grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=roots))


def add_send_parser(sub: Any, command: Callable[..., Any], settings: Sequence[str]) -> Any:
    """The `send` subcommand's arguments, on the parser ``command`` makes."""
    send = command(
        sub,
        "send",
        "stream a JSON payload of Classes and print the reply",
        settings,
    )
    send.add_argument(
        "file", help="JSON: {'classes': [...]}, a list of those, or a list of Classes"
    )
    send.add_argument("--address", help="server address (default: GRPC_ADDRESS)")
    send.add_argument("--per-request", action="store_true", help="one reply per ClassRequest")
    send.add_argument("--realm", help="the QBO company (realm) to sync to (default: the server's)")
    send.add_argument("--token", help="bearer token when the server requires one")
    send.add_argument("--tls", action="store_true", help="connect with TLS (system CA roots)")
    send.add_argument(
        "--ca-file", help="PEM CA (or the server's self-signed certificate) to trust; implies --tls"
    )
    send.add_argument("--timeout", type=float, default=120.0, help="call deadline in seconds")
    send.set_defaults(func=cmd_send)
    return send


def _loopback_address(address: str) -> str:
    """The address a local probe dials: a wildcard bind (0.0.0.0, [::]) becomes loopback."""
    host, _, port = address.rpartition(":")
    if host in ("0.0.0.0", "[::]", "::", ""):  # noqa: S104 (compared, not bound)
        return f"127.0.0.1:{port}"
    return address


def cmd_health(args: argparse.Namespace) -> int:
    """Ask the server's gRPC health service; exit 0 when it answers SERVING (container probes)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from classsync.preflight import load_settings

    settings = load_settings()
    address = args.address or _loopback_address(settings.grpc_address)
    if settings.grpc_tls_cert_file:
        # The server's own certificate as the root: a probe beside a self-signed server.
        root = Path(settings.grpc_tls_cert_file).read_bytes()
        channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=root))
    else:
        channel = grpc.insecure_channel(address)
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
        except grpc.RpcError as exc:
            print(f"unhealthy: {exc.code().name} from {address}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{status} ({address})")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


def add_health_parser(sub: Any, command: Callable[..., Any], settings: Sequence[str]) -> Any:
    """The `health` subcommand's arguments, on the parser ``command`` makes."""
    health = command(
        sub,
        "health",
        "exit 0 when the server's gRPC health says SERVING (the container's probe)",
        settings,
    )
    health.add_argument("--address", help="server address (default: GRPC_ADDRESS, via loopback)")
    health.add_argument("--service", default="", help="service name to ask about (default: all)")
    health.add_argument("--timeout", type=float, default=3.0, help="call deadline in seconds")
    health.set_defaults(func=cmd_health)
    return health
