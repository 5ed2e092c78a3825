"""Looking rows up by key: the right rows on every database, one index probe per key on PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from classsync.store import class_lookup
from tests.integration.test_repositories import _factory, _save, _valid, any_database_url

pytestmark = pytest.mark.integration
__all__ = ["any_database_url"]  # the fixture, imported for pytest


def test_rows_by_finds_the_realms_rows_with_their_job(any_database_url: str) -> None:
    engine, sf = _factory(any_database_url)
    _save(sf, [_valid("A"), _valid("B", "A:B")], realm="realm-1")
    _save(sf, [_valid("A")], realm="realm-2")
    with engine.connect() as connection:
        found = list(class_lookup.rows_by(connection, "realm-1", "fullNameKey", ["a:b", "a", "z"]))
        by_caller = list(class_lookup.rows_by(connection, "realm-1", "callerKey", ["a:b"]))
        none = list(class_lookup.rows_by(connection, "realm-1", "qbId", []))
    assert sorted(row.fullNameKey for row in found) == ["a", "a:b"]
    assert {row.status for row in found} == {"PENDING"}
    assert {row.generation for row in found} == {1}
    assert [row.callerKey for row in by_caller] == ["a:b"]
    assert none == []
    engine.dispose()


@pytest.mark.parametrize("column", class_lookup.LOOKUP_COLUMNS)
def test_postgres_probes_the_realm_and_key_index_without_statistics(
    database_url: str, column: str
) -> None:
    # A table that grew from empty and was never analyzed: PostgreSQL thinks the realm holds a
    # hundred rows, and an IN (...) look-up reads all 5,000 of them (docs/performance.md).
    engine, _ = _factory(database_url)
    with engine.begin() as connection:
        connection.execute(text('ALTER TABLE "QBClass" SET (autovacuum_enabled = false)'))
        connection.execute(
            text(
                'INSERT INTO "QBClass" (id, name, "fullNameKey", "callerKey", "qbId", "realmId", '
                "\"updatedAt\") SELECT gen_random_uuid(), 'n' || g, 'k' || g, 'k' || g, "
                "CAST(g AS text), 'realm-1', now() FROM generate_series(1, 5000) AS g"
            )
        )
    # As many keys as a ClassRequest of 500 Classes looks up: with this many, an IN (...) list
    # is planned as a scan of the realm's prefix (each row filtered against the list).
    keys = [f"k{g}" for g in range(1, 501)] + [str(g) for g in range(1, 501)]
    statement = class_lookup._PROBE[column].compile(dialect=engine.dialect)
    with engine.connect() as connection:
        plan = "\n".join(
            line
            for (line,) in connection.exec_driver_sql(
                "EXPLAIN ANALYZE " + str(statement),
                {**statement.params, "realm": "realm-1", "keys": keys},
            )
        )
    assert f'Index Scan using "QBClass_realmId_{column}_' in plan, plan
    assert "Rows Removed by Filter" not in plan, plan
    assert "rows=500 loops=1)" in plan.splitlines()[0], plan  # found every key that is there
    engine.dispose()


def test_job_states_reads_each_job_by_class_id(any_database_url: str) -> None:
    engine, sf = _factory(any_database_url)
    stored = _save(sf, [_valid("A"), _valid("B")])
    ids = [s.class_id for s in stored]  # type: ignore[union-attr]
    with engine.connect() as connection:
        states = list(class_lookup.job_states(connection, [*ids, str(uuid.uuid4())]))
        none = list(class_lookup.job_states(connection, []))
    assert sorted(row.classId for row in states) == sorted(ids)
    assert all(isinstance(row.classId, str) for row in states)
    assert {(row.status, row.generation, row.qbId) for row in states} == {("PENDING", 1, None)}
    assert none == []
    engine.dispose()
