"""In-process probe of ingest's one-Class store on PostgreSQL (docs/performance.md, "latency").

Stores one new top-level Class at a time, three ways interleaved on a throwaway database:
the general path (``save_batch``, commit, then the answer's ``states`` look-up), the
one-statement store with a durable commit, and the same with ``synchronous_commit`` off (to size
the WAL flush). Prints p50 / p90 of each.

    .venv/bin/python tools/latency_probe.py [postgresql://postgres@127.0.0.1:5432/postgres] [N]
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, create_engine, event, text

from classsync.domain import ClassInput, ValidClass, validate
from classsync.store.database import make_engine, make_session_factory
from classsync.store.migrate import upgrade
from classsync.store.one_class import PostgresOneClassStore
from classsync.store.unit_of_work import SqlAlchemyUnitOfWork


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _item(name: str) -> ValidClass:
    item = validate(ClassInput(name=name, full_name=name))
    assert isinstance(item, ValidClass)
    return item


def _relaxed(url: str) -> Engine:
    engine = make_engine(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET synchronous_commit TO OFF")
        cursor.close()
        dbapi_connection.commit()

    return engine


def _probe(url: str, rounds: int) -> dict[str, list[float]]:
    durable_engine, relaxed_engine = make_engine(url), _relaxed(url)
    sessions = make_session_factory(durable_engine)
    durable = PostgresOneClassStore(durable_engine)
    relaxed = PostgresOneClassStore(relaxed_engine)

    def general(name: str) -> None:
        with SqlAlchemyUnitOfWork(sessions) as uow:
            [stored] = uow.classes.save_batch([_item(name)], "probe", _now())
            uow.commit()
        with SqlAlchemyUnitOfWork(sessions) as uow:
            uow.jobs.states([stored.class_id])  # type: ignore[union-attr]

    ways: dict[str, Callable[[str], object]] = {
        "general path (store, commit, states)": general,
        "one statement, durable commit": lambda n: durable.store_new(
            _item(n), "probe", _now(), None
        ),
        "one statement, synchronous_commit off": lambda n: relaxed.store_new(
            _item(n), "probe", _now(), None
        ),
    }
    timings: dict[str, list[float]] = {label: [] for label in ways}
    try:
        for index in range(rounds):
            for number, (label, store) in enumerate(ways.items()):
                started = time.perf_counter()
                store(f"p{number}-{index}")
                timings[label].append(time.perf_counter() - started)
    finally:
        durable_engine.dispose()
        relaxed_engine.dispose()
    return timings


def main() -> None:
    """Run the probe on a database of its own, dropped afterwards."""
    admin_url = (
        sys.argv[1] if len(sys.argv) > 1 else "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    admin = create_engine(
        admin_url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    name = f"latency_probe_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = admin_url.rsplit("/", 1)[0] + f"/{name}"
        upgrade(url)
        for label, seconds in _probe(url, rounds).items():
            ordered = sorted(seconds[20:])  # the first ones warm the pools and caches
            p50, p90 = ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.9)]
            print(f"{label}: p50 {p50 * 1e3:.2f} ms, p90 {p90 * 1e3:.2f} ms")
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
