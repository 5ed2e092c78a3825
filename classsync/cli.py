"""The `classsync` command: serve, migrate, sandbox, send, connect, status, retry, bench."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from classsync.config import Settings
from classsync.logs import configure_logging


def _settings() -> Settings:
    return Settings()


# --- serve -------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    """Run the gRPC server and the sync engine until SIGTERM/SIGINT."""
    from classsync.bootstrap import build_app

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    import structlog

    log = structlog.get_logger("classsync.serve")
    sandbox = _maybe_start_sandbox(settings, log) if settings.sandbox_autostart else None
    app = build_app(settings)
    app.start()
    print(f"classsync listening on {settings.grpc_address} (port {app.port})", flush=True)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("signal_received", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    while not stop.wait(1.0):
        pass
    app.stop()
    if sandbox is not None:
        sandbox.stop()
    return 0


def _maybe_start_sandbox(settings: Settings, log: Any) -> Any:
    """With no QBO configured, run the local emulator in-process, so no Intuit account is needed."""
    if not settings.uses_dev_sandbox:
        return None
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(settings.qbo_environment)
    with socket.socket() as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((parts.hostname or "127.0.0.1", parts.port or 80)) == 0:
            log.info("sandbox_already_running", url=f"{parts.scheme}://{parts.netloc}")
            return None
    from classsync.sandbox import SandboxConfig, start_in_thread

    # A state file keeps the emulator's classes across restarts, like the local database does;
    # without it, Ids stored locally would point at classes the emulator forgot (610).
    running = start_in_thread(
        SandboxConfig(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 8765,
            state_file="sandbox-state.json",
        )
    )
    log.info("sandbox_started", url=running.base_url)
    return running


# --- migrate -----------------------------------------------------------------------------------
def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the database schema up to date (or check it)."""
    from classsync.store import migrate

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    if args.check:
        migrate.check(settings.database_url)
        print("schema matches the models")
    else:
        migrate.upgrade(settings.database_url)
        print(f"migrated to {migrate.current(settings.database_url)}")
    return 0


# --- sandbox -----------------------------------------------------------------------------------
def cmd_sandbox(argv: list[str]) -> int:
    """Delegate to the emulator's own CLI (it owns its options)."""
    from classsync.sandbox.cli import main as sandbox_main

    return sandbox_main(argv)


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

    settings = _settings()
    requests = [json_format.ParseDict(r, pb.ClassRequest()) for r in load_payload(Path(args.file))]
    address = args.address or settings.grpc_address
    metadata = []
    if args.per_request:
        metadata.append(("x-classsync-response", "per-request"))
    if args.token:
        metadata.append(("authorization", f"Bearer {args.token}"))
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.ClassServiceStub(channel)
        replies = stub.CreateClass(iter(requests), metadata=metadata, timeout=args.timeout)
        ok = True
        for reply in replies:
            body = json_format.MessageToDict(reply, preserving_proto_field_name=True)
            print(json.dumps(body, ensure_ascii=False, indent=2))
            ok = ok and reply.message.startswith("✅")
    return 0 if ok else 1


# --- connect -----------------------------------------------------------------------------------
def cmd_connect(args: argparse.Namespace) -> int:
    """OAuth authorize → code → tokens, stored in the database for the realm."""
    from classsync.connect import run_connect

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    realm = run_connect(settings, open_browser=not args.no_browser, timeout=args.timeout)
    print(f"connected realm {realm}; tokens stored in the database")
    return 0


# --- status / retry ----------------------------------------------------------------------------
def cmd_status(args: argparse.Namespace) -> int:
    """Counts by status, the oldest pending age and the realm connection (never tokens)."""
    from classsync.bootstrap import build_storage
    from classsync.sync.clock import SystemClock

    settings = _settings()
    storage = build_storage(settings, migrate=False)
    with storage.uow() as uow:
        counts = uow.jobs.counts()
        oldest = uow.jobs.oldest_pending()
    connection = storage.token_store.status(settings.qbo_realm_id)
    age = None
    if oldest is not None:
        age = round((SystemClock().now() - oldest).total_seconds(), 1)
    report = {
        "jobs": {k: counts.get(k, 0) for k in ("PENDING", "IN_PROGRESS", "SYNCED", "FAILED")},
        "oldest_pending_age_seconds": age,
        "realm": {
            "realm_id": settings.qbo_realm_id,
            "status": connection[0] if connection else "NOT_CONNECTED",
            "message": connection[1] if connection else None,
        },
    }
    print(json.dumps(report, indent=2))
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    """Requeue FAILED jobs (all, or the given Class ids)."""
    from classsync.bootstrap import build_storage
    from classsync.sync.clock import SystemClock

    settings = _settings()
    storage = build_storage(settings, migrate=False)
    with storage.uow() as uow:
        count = uow.jobs.requeue(
            failed_only=args.failed or not args.id,
            class_ids=args.id or [],
            now=SystemClock().now(),
        )
        uow.commit()
    print(f"requeued {count} job(s)")
    return 0


# --- bench -------------------------------------------------------------------------------------
def cmd_bench(argv: list[str]) -> int:
    """Run the benchmark suite (see classsync/bench)."""
    from classsync.bench.cli import main as bench_main

    return bench_main(argv)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (sandbox and bench parse their own options)."""
    parser = argparse.ArgumentParser(prog="classsync", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the gRPC server and the sync engine").set_defaults(
        func=cmd_serve
    )
    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("--check", action="store_true", help="only verify models == migrations")
    migrate.set_defaults(func=cmd_migrate)
    sub.add_parser("sandbox", help="run the local QBO emulator (see `classsync sandbox --help`)")
    sub.add_parser("bench", help="run the benchmarks (see `classsync bench --help`)")
    send = sub.add_parser("send", help="stream a JSON payload of Classes and print the reply")
    send.add_argument(
        "file", help="JSON: {'classes': [...]}, a list of those, or a list of Classes"
    )
    send.add_argument("--address", help="server address (default: GRPC_ADDRESS)")
    send.add_argument("--per-request", action="store_true", help="one reply per ClassRequest")
    send.add_argument("--token", help="bearer token when the server requires one")
    send.add_argument("--timeout", type=float, default=120.0, help="call deadline in seconds")
    send.set_defaults(func=cmd_send)
    connect = sub.add_parser("connect", help="authorize the QBO app and store tokens")
    connect.add_argument(
        "--no-browser", action="store_true", help="print the URL instead of opening it"
    )
    connect.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for the redirect"
    )
    connect.set_defaults(func=cmd_connect)
    sub.add_parser("status", help="sync counts, oldest pending age, realm connection").set_defaults(
        func=cmd_status
    )
    retry = sub.add_parser("retry", help="requeue failed jobs")
    retry.add_argument("--failed", action="store_true", help="requeue every FAILED job (default)")
    retry.add_argument("--id", action="append", help="a Class id to requeue (repeatable)")
    retry.set_defaults(func=cmd_retry)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `classsync` command."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "sandbox":
        return cmd_sandbox(argv[1:])
    if argv and argv[0] == "bench":
        return cmd_bench(argv[1:])
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
