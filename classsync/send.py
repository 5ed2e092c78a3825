"""`classsync send`: stream a JSON payload of Classes to a server and print the reply."""

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
    send.add_argument("--token", help="bearer token when the server requires one")
    send.add_argument("--tls", action="store_true", help="connect with TLS (system CA roots)")
    send.add_argument(
        "--ca-file", help="PEM CA (or the server's self-signed certificate) to trust; implies --tls"
    )
    send.add_argument("--timeout", type=float, default=120.0, help="call deadline in seconds")
    send.set_defaults(func=cmd_send)
    return send
