"""Bulk inserts: COPY or one JSON-expanding statement on PostgreSQL, an executemany elsewhere."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

# From this many rows on, COPY beats the JSON-expanding INSERT; below it the two are even or
# too close to tell (a ClassRequest of 20 Classes: even; 40: COPY 13 % faster; 1,000: 29 %;
# docs/performance.md).
COPY_MIN_ROWS = 32

# INSERT text per (table, column names); it never changes, so it is built and prepared once.
_SQL: dict[tuple[str, tuple[str, ...]], str] = {}


def insert_rows(session: Session, table: Table, rows: list[dict[str, object]]) -> None:
    """Insert ``rows`` (dicts keyed by column name, all with the same keys) into ``table``.

    An executemany runs the INSERT (and its foreign-key check) once per row on the server and
    binds every value separately. On PostgreSQL, from ``COPY_MIN_ROWS`` rows on, the rows are
    COPYed in; fewer travel as one JSON array of arrays (``json.dumps`` is C code, and no column
    name is repeated per row) expanded by ``json_array_elements`` (docs/performance.md). Other
    databases keep the executemany.
    """
    if not rows:
        return
    bind = session.connection()
    if bind.dialect.name != "postgresql":
        session.execute(table.insert(), rows)
        return
    if len(rows) >= COPY_MIN_ROWS:
        _copy_rows(session, table, rows)
        return
    names = tuple(rows[0])
    key = (table.name, names)
    sql = _SQL.get(key)
    if sql is None:
        columns = ", ".join(f'"{name}"' for name in names)
        values = ", ".join(
            f"CAST(e->>{i} AS {table.c[name].type.compile(dialect=bind.dialect)})"
            for i, name in enumerate(names)
        )
        # Identifiers come from our own table metadata; the values travel as one bound text.
        sql = (
            f'INSERT INTO "{table.name}" ({columns}) SELECT {values} '  # noqa: S608
            "FROM json_array_elements(CAST(:rows AS json)) AS e"
        )
        _SQL[key] = sql
    payload = json.dumps([[row[name] for name in names] for row in rows], default=_json_value)
    session.execute(text(sql), {"rows": payload})


def _copy_rows(session: Session, table: Table, rows: list[dict[str, object]]) -> None:
    """COPY ``rows`` in, on the session's own connection and transaction (psycopg's copy).

    The driver's errors are raised as SQLAlchemy's, as a statement's would be, so a unique-key
    race still reaches the caller as an IntegrityError (and is retried there).
    """
    import psycopg  # only PostgreSQL gets here

    names = tuple(rows[0])
    columns = ", ".join(f'"{name}"' for name in names)
    # Identifiers come from our own table metadata.
    statement = f'COPY "{table.name}" ({columns}) FROM STDIN'
    raw = cast(Any, session.connection().connection.dbapi_connection)
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([row[name] for name in names])
    except psycopg.IntegrityError as error:
        raise IntegrityError(statement, None, error) from error
    except psycopg.OperationalError as error:
        raise OperationalError(statement, None, error) from error


def _json_value(value: object) -> str:
    # Only datetimes reach here; ISO text is what PostgreSQL parses into TIMESTAMP(3).
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in a bulk insert")
