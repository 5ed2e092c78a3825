"""Start-up checks of the settings: each problem is one line naming the setting to change."""

from __future__ import annotations

import socket
from pathlib import Path

from cryptography.fernet import Fernet
from pydantic import ValidationError
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from classsync.config import DEV_CLIENT_ID, DEV_CLIENT_SECRET, DEV_REALM_ID, Settings
from classsync.observability.http import split_address
from classsync.store import migrate
from classsync.store.database import normalize_database_url

_CONNECT_TIMEOUT_S = 10

_EXAMPLE_PORT = {"GRPC_ADDRESS": 50051, "METRICS_ADDRESS": 9464}

_MIGRATE_HINT = (
    "run `classsync migrate` once as a database user allowed to change the schema, "
    "then start with MIGRATE_ON_START=false (or `serve --no-migrate`)"
)


class ConfigError(Exception):
    """A setting is wrong or unusable; the message says which one and what to do (one line)."""


def load_settings() -> Settings:
    """Settings from the environment and .env; a value that does not parse is a ConfigError."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first["loc"]) or "a setting"
        # The input value is left out on purpose: it may be a secret.
        msg = f"{name} is invalid ({first['msg']}): fix it in the environment or .env"
        raise ConfigError(msg) from exc


def check_before_start(settings: Settings, *, migrate_on_start: bool) -> None:
    """Everything `serve` can find wrong before it starts anything (the emulator included)."""
    parse_database_url(settings)  # a typo in DATABASE_URL is named before the guard below
    check_sandbox_guard(settings)
    check_qbo_credentials(settings)
    check_token_encryption_key(settings)
    check_tls_files(settings)
    check_grpc_address(settings)
    check_metrics_address(settings)
    check_database(settings)
    if migrate_on_start:
        migrate_database(settings)
    else:
        check_schema_at_head(settings)


def check_sandbox_guard(settings: Settings) -> None:
    """Refuse emulator QBO settings against a real database unless SANDBOX_AUTOSTART says so.

    Otherwise setting only DATABASE_URL would write emulator-issued QBO Ids into that database.
    """
    unset = settings.sandbox_autostart is None
    if unset and settings.uses_dev_sandbox and not settings.uses_default_database:
        msg = (
            "QBO_ENVIRONMENT is the local QBO emulator but DATABASE_URL is not the default "
            "SQLite file: set QBO_ENVIRONMENT, QBO_CLIENT_ID, QBO_CLIENT_SECRET and "
            "QBO_REALM_ID for your QuickBooks company, or SANDBOX_AUTOSTART=true to sync "
            "this database to the emulator on purpose"
        )
        raise ConfigError(msg)


def check_qbo_credentials(settings: Settings) -> None:
    """Intuit's sandbox/production need the app's own keys and company, not the emulator's."""
    environment = settings.intuit_environment
    if environment not in ("sandbox", "production"):
        return
    missing = []
    if settings.qbo_client_id.strip() in ("", DEV_CLIENT_ID):
        missing.append("QBO_CLIENT_ID")
    if settings.qbo_client_secret.get_secret_value().strip() in ("", DEV_CLIENT_SECRET):
        missing.append("QBO_CLIENT_SECRET")
    if settings.qbo_realm_id.strip() in ("", DEV_REALM_ID):
        missing.append("QBO_REALM_ID")
    if missing:
        msg = (
            f"QBO_ENVIRONMENT={environment} needs your Intuit app's keys and company: set "
            f"{', '.join(missing)} (the keys: developer.intuit.com, your app, Keys and "
            "credentials; the realm id: the company id of a sandbox company under "
            "developer.intuit.com, Sandbox, or of a QuickBooks company under Settings, "
            "Account and settings, Billing & subscription)"
        )
        raise ConfigError(msg)


def check_token_encryption_key(settings: Settings) -> None:
    """Each comma-separated TOKEN_ENCRYPTION_KEY is a Fernet key (never repeated in the message)."""
    if settings.token_encryption_key is None:
        return
    keys = [k.strip() for k in settings.token_encryption_key.get_secret_value().split(",")]
    for position, key in enumerate((k for k in keys if k), start=1):
        try:
            Fernet(key.encode())
        except ValueError as exc:
            msg = (
                f"TOKEN_ENCRYPTION_KEY: key {position} is not a Fernet key (32 url-safe base64 "
                'bytes): generate one with python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"'
            )
            raise ConfigError(msg) from exc


def check_tls_files(settings: Settings) -> None:
    """Both TLS files or neither, each readable PEM."""
    cert, key = settings.grpc_tls_cert_file, settings.grpc_tls_key_file
    if bool(cert) != bool(key):
        msg = (
            "GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE go together: set both (PEM files) or neither"
        )
        raise ConfigError(msg)
    for name, path in (("GRPC_TLS_CERT_FILE", cert), ("GRPC_TLS_KEY_FILE", key)):
        if not path:
            continue
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            msg = f"{name}={path} cannot be read ({exc.strerror}): point it at a readable PEM file"
            raise ConfigError(msg) from exc
        if b"-----BEGIN " not in data:
            msg = f"{name}={path} is not a PEM file: point it at a PEM file"
            raise ConfigError(msg)


def check_grpc_address(settings: Settings) -> None:
    """GRPC_ADDRESS is host:port and nothing else listens there (another server included)."""
    _check_listenable(
        "GRPC_ADDRESS",
        settings.grpc_address,
        "stop what listens there, or set GRPC_ADDRESS to a free host:port and give callers that",
    )


def check_metrics_address(settings: Settings) -> None:
    """METRICS_ADDRESS (when set) is host:port and free to listen on."""
    if not settings.metrics_address:
        return
    _check_listenable(
        "METRICS_ADDRESS",
        settings.metrics_address,
        "set a free host:port, or leave it empty to turn /metrics, /healthz and /readyz off",
    )


def _check_listenable(name: str, address: str, remedy: str) -> None:
    try:
        host, port = split_address(address)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except ValueError as exc:
        msg = f"{name} {address} is not host:port: set it as e.g. 127.0.0.1:{_EXAMPLE_PORT[name]}"
        raise ConfigError(msg) from exc
    except OSError as exc:
        msg = f"{name} {address} cannot be listened on ({exc.strerror or exc}): {remedy}"
        raise ConfigError(msg) from exc


def parse_database_url(settings: Settings) -> URL:
    """DATABASE_URL as SQLAlchemy reads it, or a ConfigError that does not repeat the URL."""
    scheme = settings.database_url.partition("://")[0] or "(none)"
    try:
        url = make_url(normalize_database_url(settings.database_url))
        url.get_dialect()
    except NoSuchModuleError as exc:
        msg = (
            f"DATABASE_URL has an unknown database kind '{scheme}': use postgresql://, "
            "mysql:// or sqlite:///"
        )
        raise ConfigError(msg) from exc
    except (ArgumentError, ValueError) as exc:
        # SQLAlchemy's own message quotes the whole URL, password included: not repeated.
        msg = (
            "DATABASE_URL cannot be parsed: expected e.g. "
            "postgresql://user:password@host:5432/db, mysql://user:password@host:3306/db "
            "or sqlite:///path/to/file.db (url-encode special characters in the password)"
        )
        raise ConfigError(msg) from exc
    return url


def check_database(settings: Settings) -> None:
    """DATABASE_URL parses and the database answers."""
    url = parse_database_url(settings)
    where = url.database if url.get_backend_name() == "sqlite" else f"{url.host}:{url.port or ''}"
    # A bounded connect: the drivers' own default waits for ever on a host that drops packets.
    timeout = {} if url.get_backend_name() == "sqlite" else {"connect_timeout": _CONNECT_TIMEOUT_S}
    engine = create_engine(url, poolclass=NullPool, connect_args=timeout)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        hint = (
            "(its directory must exist and be writable)"
            if url.get_backend_name() == "sqlite"
            else "and that the database server is running"
        )
        msg = f"database {where} is unreachable ({_first_line(exc)}): check DATABASE_URL {hint}"
        raise ConfigError(msg) from exc
    finally:
        engine.dispose()


def migrate_database(settings: Settings) -> None:
    """Apply migrations; a refusal (e.g. no DDL rights) says how to migrate separately."""
    try:
        migrate.upgrade(settings.database_url)
    except SQLAlchemyError as exc:
        msg = f"migrating the database failed ({_first_line(exc)}): {_MIGRATE_HINT}"
        raise ConfigError(msg) from exc


def check_schema_at_head(
    settings: Settings,
    remedy: str = "run `classsync migrate` once, or set MIGRATE_ON_START=true",
    reason: str = " and MIGRATE_ON_START=false",
) -> None:
    """The schema is the one this version needs (serve with MIGRATE_ON_START=false, retry, connect)."""
    try:
        at = migrate.current(settings.database_url)
    except SQLAlchemyError as exc:
        msg = f"cannot read the schema version ({_first_line(exc)}): check DATABASE_URL"
        raise ConfigError(msg) from exc
    needed = migrate.head()
    if at != needed:
        msg = (
            f"the database is not migrated (schema at {at or 'no classsync revision'}, this "
            f"version needs {needed}){reason}: {remedy}"
        )
        raise ConfigError(msg)


def _first_line(exc: SQLAlchemyError) -> str:
    """The driver's own reason, first line only (SQLAlchemy appends SQL and a help link)."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__
