"""Snapshot of a PostgreSQL schema (columns, constraints, indexes, enums) for equality tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from classsync.store.migrate import VERSION_TABLE

_COLUMNS = """
SELECT table_name, column_name, data_type, udt_name, datetime_precision,
       character_maximum_length, is_nullable, column_default
FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name <> :version_table
ORDER BY table_name, column_name
"""
_CONSTRAINTS = """
SELECT rel.relname, con.conname, con.contype, pg_get_constraintdef(con.oid)
FROM pg_constraint con JOIN pg_class rel ON rel.oid = con.conrelid
WHERE rel.relnamespace = current_schema()::regnamespace AND rel.relname <> :version_table
ORDER BY rel.relname, con.conname
"""
_INDEXES = """
SELECT tablename, indexname, indexdef FROM pg_indexes
WHERE schemaname = current_schema() AND tablename <> :version_table
ORDER BY tablename, indexname
"""
_ENUMS = """
SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder)::text
FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
WHERE t.typnamespace = current_schema()::regnamespace
GROUP BY t.typname ORDER BY t.typname
"""


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Everything about the current schema that Prisma's DDL or our migrations decide."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            params = {"version_table": VERSION_TABLE}
            return {
                name: [tuple(row) for row in conn.execute(text(sql), params)]
                for name, sql in (
                    ("columns", _COLUMNS),
                    ("constraints", _CONSTRAINTS),
                    ("indexes", _INDEXES),
                    ("enums", _ENUMS),
                )
            }
    finally:
        engine.dispose()


def execute_script(url: str, script: str) -> None:
    """Run a multi-statement SQL script (no parameters) in one transaction."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(script)
    finally:
        engine.dispose()
