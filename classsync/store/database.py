"""Database URLs in the Node service's forms, engines tuned per dialect, and session factories."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

# Query parameters Prisma understands but the Python drivers refuse ("invalid connection
# option"): Prisma's own pool/engine settings. They mean nothing to SQLAlchemy's pool.
_PRISMA_ONLY_PARAMS = frozenset(
    {
        "connection_limit",
        "pool_timeout",
        "pgbouncer",
        "statement_cache_size",
        "socket_timeout",
        "sslaccept",
        "sslidentity",
        "sslpassword",
        "max_idle_connection_lifetime",
        "max_connection_lifetime",
    }
)
_POSTGRES_SCHEMES = frozenset({"postgres", "postgresql"})
_MYSQL_SCHEMES = frozenset({"mysql", "mariadb"})
_SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_database_url(url: str) -> str:
    """Turn a DATABASE_URL as the Node service wrote it into a SQLAlchemy URL with a driver.

    - ``postgresql://`` / ``postgres://`` -> ``postgresql+psycopg://``; Prisma's ``?schema=X``
      becomes the libpq option ``options=-csearch_path=X``.
    - ``mysql://`` / ``mariadb://`` -> ``mysql+pymysql://`` (``charset=utf8mb4`` unless given).
    - Prisma's ``file:./dev.db`` -> ``sqlite:///./dev.db``; ``sqlite:///path`` is kept.
    - A URL that already names a driver (``postgresql+psycopg://``) keeps it.
    Prisma-only query parameters (``connection_limit``, ``pool_timeout``, ...) are dropped.
    """
    text = url.strip()
    if text.startswith("file:"):
        # Prisma's SQLite form; relative paths stay relative to the working directory.
        return "sqlite:///" + text.removeprefix("file:").removeprefix("//")
    parsed = make_url(text)
    backend, _, driver = parsed.drivername.partition("+")
    query = {k: v for k, v in parsed.query.items() if k not in _PRISMA_ONLY_PARAMS}
    if backend in _POSTGRES_SCHEMES:
        schema = query.pop("schema", None)
        if isinstance(schema, str) and schema:
            search_path = f"-csearch_path={schema}"
            existing = query.get("options")
            query["options"] = f"{existing} {search_path}" if existing else search_path
        parsed = parsed.set(drivername=f"postgresql+{driver or 'psycopg'}", query=query)
    elif backend in _MYSQL_SCHEMES:
        query.setdefault("charset", "utf8mb4")
        parsed = parsed.set(drivername=f"mysql+{driver or 'pymysql'}", query=query)
    else:
        return text
    return parsed.render_as_string(hide_password=False)


def dialect_name(engine: Engine) -> str:
    """``postgresql``, ``mysql`` (MySQL and MariaDB) or ``sqlite``."""
    return engine.dialect.name


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin (see below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL: readers do not block the writer; foreign keys are off by default in SQLite.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # BEGIN IMMEDIATE takes the write lock up front: a read-then-write transaction (claiming
        # a job) can then never fail with "database is locked" on the lock upgrade, it waits
        # for busy_timeout instead. SQLite has one writer at a time anyway.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _configure_utc_session(engine: Engine, statement: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Columns hold naive UTC; make CURRENT_TIMESTAMP/now() agree whatever the server zone.
        cursor = dbapi_connection.cursor()
        cursor.execute(statement)
        cursor.close()
        dbapi_connection.commit()


def make_engine(
    url: str, *, pool_size: int = 10, max_overflow: int = 10, echo: bool = False
) -> Engine:
    """Create an Engine for any supported DATABASE_URL form (see ``normalize_database_url``).

    PostgreSQL and MySQL sessions run in UTC; MySQL uses READ COMMITTED (fewer gap locks
    around ``SKIP LOCKED`` queue claims); SQLite gets WAL, foreign keys, a busy timeout and
    ``BEGIN IMMEDIATE`` transactions. ``pool_size`` connections are kept open; up to
    ``max_overflow`` more are opened under load and closed when handed back.
    """
    sa_url: URL = make_url(normalize_database_url(url))
    kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": False}
    backend = sa_url.get_backend_name()
    if backend == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False}
        if sa_url.database not in (None, "", ":memory:"):
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = max_overflow
    else:
        kwargs["pool_size"] = pool_size
        kwargs["max_overflow"] = max_overflow
        if backend == "mysql":
            kwargs["isolation_level"] = "READ COMMITTED"
    engine = create_engine(sa_url, **kwargs)
    if backend == "sqlite":
        _configure_sqlite(engine)
    elif backend == "postgresql":
        _configure_utc_session(engine, "SET TIME ZONE 'UTC'")
    elif backend == "mysql":
        _configure_utc_session(engine, "SET time_zone = '+00:00'")
    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine`` whose objects stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


__all__ = ["dialect_name", "make_engine", "make_session_factory", "normalize_database_url"]
