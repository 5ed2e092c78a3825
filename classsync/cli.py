"""The `classsync` command: serve, migrate, sandbox, send, connect, status, retry, adopt, health, bench."""

from __future__ import annotations

import argparse
import signal
import sys
import textwrap
import threading
import traceback
from pathlib import Path
from typing import Any

from classsync import __version__
from classsync.config import Settings
from classsync.logs import configure_logging
from classsync.operations import cmd_adopt, cmd_retry, cmd_status, hint_unsynced
from classsync.send import add_send_parser


def _settings() -> Settings:
    from classsync.preflight import load_settings

    return load_settings()


# --- serve -------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    """Run the gRPC server and the sync engine until SIGTERM/SIGINT."""
    from classsync.bootstrap import build_app
    from classsync.preflight import check_before_start

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    import structlog

    log = structlog.get_logger("classsync.serve")
    # Every check (and the migration) runs before anything starts, the emulator included.
    check_before_start(settings, migrate_on_start=settings.migrate_on_start and not args.no_migrate)
    sandbox = _maybe_start_sandbox(settings, log) if settings.should_autostart_sandbox else None
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("signal_received", signal=signal.Signals(signum).name)
        stop.set()

    # Before the server starts: a SIGTERM just after the "listening" line must drain, not kill.
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    app = build_app(settings, migrate=False)
    with app.storage.uow() as uow:
        unadopted = uow.classes.count_unsynced_without_job()
    if unadopted:
        # Stored but never synced (a Node database's rows): nothing syncs them until adopted.
        log.warning("classes_waiting_for_adopt", rows=unadopted, hint="run `classsync adopt`")
    app.start()
    print(f"classsync listening on {settings.grpc_address} (port {app.port})", flush=True)
    while not stop.wait(1.0):
        pass
    app.stop()
    if sandbox is not None:
        sandbox.stop()
    return 0


def _maybe_start_sandbox(settings: Settings, log: Any) -> Any:
    """Run the local emulator in-process at the address QBO_ENVIRONMENT names."""
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
    from classsync.preflight import check_database
    from classsync.store import migrate

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    check_database(settings)
    if args.check:
        migrate.check(settings.database_url)
        print("schema matches the models")
    else:
        migrate.upgrade(settings.database_url)
        print(f"migrated to {migrate.current(settings.database_url)}")
        hint_unsynced(settings)
    return 0


# --- sandbox -----------------------------------------------------------------------------------
def cmd_sandbox(argv: list[str]) -> int:
    """Delegate to the emulator's own CLI (it owns its options)."""
    from classsync.sandbox.cli import main as sandbox_main

    return sandbox_main(argv)


# --- connect -----------------------------------------------------------------------------------
def cmd_connect(args: argparse.Namespace) -> int:
    """OAuth authorize → code → tokens, stored in the database for the realm."""
    from classsync.connect import retry_hint, run_connect, run_connect_paste
    from classsync.domain.errors import ClasssyncError
    from classsync.preflight import (
        check_database,
        check_qbo_credentials,
        check_token_encryption_key,
    )

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    check_qbo_credentials(settings)
    check_token_encryption_key(settings)
    check_database(settings)
    try:
        if args.paste:
            realm = run_connect_paste(settings, read_line=sys.stdin.readline)
        else:
            realm = run_connect(settings, open_browser=not args.no_browser, timeout=args.timeout)
    except (ClasssyncError, RuntimeError, OSError) as exc:  # OSError: sockets, requests, timeouts
        if settings.log_level.upper() == "DEBUG":
            traceback.print_exc()
        print(
            f"classsync connect: {exc}; nothing was stored: {retry_hint(settings)}", file=sys.stderr
        )
        return 1
    print(f"connected realm {realm}; tokens stored in the database")
    return 0


# --- health ------------------------------------------------------------------------------------
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

    settings = _settings()
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


# --- bench -------------------------------------------------------------------------------------
def cmd_bench(argv: list[str]) -> int:
    """Run the benchmark suite (see classsync/bench); it needs the `bench` extra."""
    import importlib.util

    missing = [m for m in ("psutil", "matplotlib") if importlib.util.find_spec(m) is None]
    if missing:
        print(
            f"classsync bench needs {', '.join(missing)}: pip install 'classsync[bench]' "
            "(or `make install`, which includes it)",
            file=sys.stderr,
        )
        return 2
    from classsync.bench.cli import main as bench_main

    return bench_main(argv)


# Settings each command reads (shown by its --help); `serve` reads them all.
_DATABASE = ("DATABASE_URL", "TOKEN_ENCRYPTION_KEY")
_LOGGING = ("LOG_LEVEL", "LOG_FORMAT")
_QBO_APP = (
    "QBO_ENVIRONMENT",
    "QBO_API_BASE_URL",
    "QBO_CLIENT_ID",
    "QBO_CLIENT_SECRET",
    "QBO_REDIRECT_URI",
    "QBO_REALM_ID",
    "QBO_TIMEOUT_SECONDS",
)
COMMAND_SETTINGS: dict[str, tuple[str, ...]] = {
    "migrate": ("DATABASE_URL", *_LOGGING),
    "send": ("GRPC_ADDRESS",),
    "connect": (*_QBO_APP, *_DATABASE, *_LOGGING),
    # A realm with no stored tokens counts as connected when a refresh token to start from exists.
    "status": (*_DATABASE, "QBO_REALM_ID", "QBO_REFRESH_TOKEN", "QBO_ENVIRONMENT"),
    "retry": ("DATABASE_URL",),
    "adopt": ("DATABASE_URL", "QBO_REALM_ID"),
    # A TLS server is probed with its own certificate as the trusted root.
    "health": ("GRPC_ADDRESS", "GRPC_TLS_CERT_FILE"),
}


def setting_names() -> list[str]:
    """Every environment variable Settings reads (first name of each; Node aliases excluded)."""
    names = []
    for name, info in Settings.model_fields.items():
        choices = getattr(info.validation_alias, "choices", None)
        names.append(info.alias or (str(choices[0]) if choices else name.upper()))
    return names


def _epilog(names: tuple[str, ...] | list[str]) -> str:
    return "settings read (environment or .env, see .env.example):\n  " + textwrap.fill(
        ", ".join(names), width=90, subsequent_indent="  "
    )


def _command(sub: Any, name: str, help_text: str, names: tuple[str, ...] | list[str]) -> Any:
    return sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=_epilog(names),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (sandbox and bench parse their own options)."""
    parser = argparse.ArgumentParser(prog="classsync", description=__doc__)
    parser.add_argument("--version", action="version", version=f"classsync {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = _command(sub, "serve", "run the gRPC server and the sync engine", setting_names())
    serve.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not migrate; refuse to start unless the schema is at head (MIGRATE_ON_START=false)",
    )
    serve.set_defaults(func=cmd_serve)
    migrate = _command(sub, "migrate", "apply database migrations", COMMAND_SETTINGS["migrate"])
    migrate.add_argument("--check", action="store_true", help="only verify models == migrations")
    migrate.set_defaults(func=cmd_migrate)
    sub.add_parser("sandbox", help="run the local QBO emulator (see `classsync sandbox --help`)")
    sub.add_parser("bench", help="run the benchmarks (see `classsync bench --help`)")
    add_send_parser(sub, _command, COMMAND_SETTINGS["send"])
    connect = _command(
        sub, "connect", "authorize the QBO app and store tokens", COMMAND_SETTINGS["connect"]
    )
    connect.add_argument(
        "--no-browser", action="store_true", help="print the URL instead of opening it"
    )
    connect.add_argument(
        "--paste",
        action="store_true",
        help="no local listener: print the consent URL, then read the redirected URL on stdin",
    )
    connect.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for the redirect"
    )
    connect.set_defaults(func=cmd_connect)
    _add_operations_parsers(sub)
    return parser


def _add_operations_parsers(sub: Any) -> None:
    """status, retry, health and adopt: what an operator runs against a deployment."""
    _command(
        sub,
        "status",
        "sync counts, oldest pending age, realm connection",
        COMMAND_SETTINGS["status"],
    ).set_defaults(func=cmd_status)
    retry = _command(
        sub,
        "retry",
        "requeue every FAILED job (all realms), or the jobs of the Classes given with --id",
        COMMAND_SETTINGS["retry"],
    )
    retry.add_argument(
        "--failed",
        action="store_true",
        help="only FAILED jobs (the default without --id; with --id, those of them that FAILED)",
    )
    retry.add_argument(
        "--id",
        action="append",
        help="a local Class id (QBClass.id) to sync again, whatever its state unless a worker "
        "holds it (repeatable)",
    )
    retry.set_defaults(func=cmd_retry)
    health = _command(
        sub,
        "health",
        "exit 0 when the server's gRPC health says SERVING (the container's probe)",
        COMMAND_SETTINGS["health"],
    )
    health.add_argument("--address", help="server address (default: GRPC_ADDRESS, via loopback)")
    health.add_argument("--service", default="", help="service name to ask about (default: all)")
    health.add_argument("--timeout", type=float, default=3.0, help="call deadline in seconds")
    health.set_defaults(func=cmd_health)
    adopt = _command(
        sub,
        "adopt",
        "queue a sync job for every stored Class with no QBO Id and no job (Node cutover)",
        COMMAND_SETTINGS["adopt"],
    )
    adopt.add_argument("--realm", help="the QBO realm to sync them to (default QBO_REALM_ID)")
    adopt.add_argument("--dry-run", action="store_true", help="only count and list them")
    adopt.set_defaults(func=cmd_adopt)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `classsync` command: a wrong setting is one line on stderr, exit 2."""
    from classsync.preflight import ConfigError

    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] == "sandbox":
            return cmd_sandbox(argv[1:])
        if argv and argv[0] == "bench":
            return cmd_bench(argv[1:])
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except ConfigError as exc:
        if _debug_logging():
            traceback.print_exc()
        print(f"classsync: configuration error: {exc}", file=sys.stderr)
        return 2


def _debug_logging() -> bool:
    """LOG_LEVEL=DEBUG asks for tracebacks (unreadable settings count as not DEBUG)."""
    from classsync.preflight import ConfigError, load_settings

    try:
        return load_settings().log_level.upper() == "DEBUG"
    except ConfigError:
        return False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
