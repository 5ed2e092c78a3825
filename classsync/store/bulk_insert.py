"""Bulk inserts: one JSON-expanding statement on PostgreSQL, an executemany elsewhere."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Table, text
from sqlalchemy.orm import Session

# INSERT text per (table, column names); it never changes, so it is built and prepared once.
_SQL: dict[tuple[str, tuple[str, ...]], str] = {}


def insert_rows(session: Session, table: Table, rows: list[dict[str, object]]) -> None:
    """Insert ``rows`` (dicts keyed by column name, all with the same keys) into ``table``.

    An executemany runs the INSERT (and its foreign-key check) once per row on the server and
    binds every value separately. On PostgreSQL the rows travel instead as one JSON array of
    arrays (``json.dumps`` is C code, and no column name is repeated per row) expanded by
    ``json_array_elements`` (docs/performance.md). Other databases keep the executemany.
    """
    if not rows:
        return
    bind = session.connection()
    if bind.dialect.name != "postgresql":
        session.execute(table.insert(), rows)
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


def _json_value(value: object) -> str:
    # Only datetimes reach here; ISO text is what PostgreSQL parses into TIMESTAMP(3).
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in a bulk insert")
