"""Alembic environment: runs classsync's revisions against the URL the caller hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from classsync.store import models
from classsync.store.database import make_engine
from classsync.store.migrate import VERSION_TABLE

config = context.config
_LOCK_NAME = "classsync_migrations"
_LOCK_KEY = 0x636C_6173_7379_6E63  # "classync" in ASCII: an arbitrary, fixed advisory-lock key
target_metadata = models.Base.metadata


def _url() -> str:
    # Never the environment: migrate.py (or `alembic -x url=...`) says which database.
    url = (
        config.attributes.get("url")
        or context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
    )
    if not url:
        msg = "no database URL: use classsync.store.migrate or `alembic -x url=...`"
        raise RuntimeError(msg)
    return str(url)


def _include_name(name: str | None, type_: str, _parent_names: object) -> bool:
    # A Node database may hold other tables (and a "SyncStatus" enum): they are not ours, so
    # autogenerate/check must neither propose dropping them nor call them drift.
    if type_ == "table":
        return name in target_metadata.tables
    return True


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        include_name=_include_name,
        compare_type=True,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        # Alembic runs each SQLite revision in its own transaction and reads the version table
        # before the first one, outside any lock: a process starting alongside another could
        # read a version the other was already moving past ("expected to match one row ... 0
        # found"). One transaction for the whole run (BEGIN IMMEDIATE) reads it under the lock.
        transactional_ddl=True if connection.dialect.name == "sqlite" else None,
    )


def run_migrations_offline() -> None:
    """Print the SQL for the revisions instead of running it (`alembic upgrade --sql`)."""
    context.configure(
        url=make_engine(_url()).url,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_serialised(connection: Connection) -> None:
    # Several service processes may start (and migrate) at once: only one may run the revisions,
    # the others wait and then find the database at head. PostgreSQL: a transaction-scoped
    # advisory lock taken before Alembic reads the version table. MySQL: a named session lock.
    # SQLite: make_engine starts every transaction with BEGIN IMMEDIATE, which already serialises.
    _configure(connection)
    dialect = connection.dialect.name
    if dialect == "mysql":
        connection.execute(text("SELECT GET_LOCK(:name, 600)"), {"name": _LOCK_NAME})
        # End the implicit transaction, or Alembic would run inside it and never commit.
        connection.commit()
    try:
        with context.begin_transaction():
            if dialect == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
            context.run_migrations()
    finally:
        if dialect == "mysql":
            connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": _LOCK_NAME})
            connection.commit()


def run_migrations_online() -> None:
    """Run the revisions on a live connection (given by the caller, or opened here)."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_serialised(connection)
        return
    engine = make_engine(_url(), pool_size=1)
    try:
        with engine.connect() as conn:
            _run_serialised(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
