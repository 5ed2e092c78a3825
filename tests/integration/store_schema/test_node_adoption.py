"""A database the Node service (Prisma) created is adopted unchanged, then extended additively."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from classsync.store.migrate import check, current, head, upgrade
from tests.fixtures.database import fresh_postgres_database
from tests.integration.store_schema._pg_schema import execute_script, snapshot

pytestmark = pytest.mark.integration

# Exactly what Prisma 6 creates for the Node service's model (schema.prisma, QBClass), plus
# what else a Node database may hold: an enum named like our statuses and an unrelated table.
_NODE_DDL = """
CREATE TYPE "SyncStatus" AS ENUM ('PENDING', 'SYNCED', 'FAILED');
CREATE TABLE "Invoice" ("id" SERIAL PRIMARY KEY, "status" "SyncStatus" NOT NULL DEFAULT 'PENDING');
INSERT INTO "Invoice" ("status") VALUES ('SYNCED'), ('FAILED');
CREATE TABLE "QBClass" (
    "id" UUID NOT NULL,
    "qbId" TEXT,
    "name" TEXT NOT NULL,
    "fullName" TEXT,
    "isSubClass" BOOLEAN NOT NULL DEFAULT false,
    "isActive" BOOLEAN NOT NULL DEFAULT true,
    "domainSource" TEXT,
    "versionToken" INTEGER NOT NULL DEFAULT 0,
    "isSparse" BOOLEAN NOT NULL DEFAULT false,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "QBClass_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "QBClass_qbId_key" ON "QBClass"("qbId");
"""

# (id, qbId, name, fullName, isSubClass, createdAt) as the Node service stored them.
_NODE_ROWS: list[tuple[str, str | None, str, str | None, bool, str]] = [
    ("00000000-0000-4000-8000-000000000001", "", "Orphan", "", False, "2024-01-01 00:00:01"),
    (
        "00000000-0000-4000-8000-000000000002",
        "100",
        "Company",
        "Company",
        False,
        "2024-01-01 00:00:02",
    ),
    (
        "00000000-0000-4000-8000-000000000003",
        "101",
        "Software Dept",
        "Company / Software Dept",
        True,
        "2024-01-01 00:00:03",
    ),
    (
        "00000000-0000-4000-8000-000000000004",
        None,
        "Backend",
        "Company:Software Dept:Backend",
        True,
        "2024-01-01 00:00:04",
    ),
    # Same path as row 3, written later: it must not steal (or break) row 3's key.
    (
        "00000000-0000-4000-8000-000000000005",
        "102",
        "Software Dept",
        "Company:Software Dept",
        True,
        "2024-01-01 00:00:05",
    ),
    (
        "00000000-0000-4000-8000-000000000006",
        "103",
        "NoFullName",
        None,
        False,
        "2024-01-01 00:00:06",
    ),
]

# Identity keys are case-folded (docs/architecture.md, "Identity").
_EXPECTED_KEYS = {
    "00000000-0000-4000-8000-000000000001": "orphan",
    "00000000-0000-4000-8000-000000000002": "company",
    "00000000-0000-4000-8000-000000000003": "company:software dept",
    "00000000-0000-4000-8000-000000000004": "company:software dept:backend",
    "00000000-0000-4000-8000-000000000005": None,
    "00000000-0000-4000-8000-000000000006": "nofullname",
}


def _rows(url: str, sql: str) -> list[dict[str, Any]]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(text(sql))]
    finally:
        engine.dispose()


@pytest.fixture
def node_database_url(empty_database_url: str) -> str:
    """A database as the Node service left it: Prisma's table, rows, an enum, another table."""
    execute_script(empty_database_url, _NODE_DDL)
    engine = create_engine(empty_database_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(
            text(
                'INSERT INTO "QBClass" ("id", "qbId", "name", "fullName", "isSubClass", '
                '"domainSource", "versionToken", "createdAt", "updatedAt") '
                "VALUES (:id, :qb_id, :name, :full_name, :sub, 'QBO', 3, "
                "CAST(:created AS timestamp), CAST(:created AS timestamp))"
            ),
            [
                {
                    "id": r[0],
                    "qb_id": r[1],
                    "name": r[2],
                    "full_name": r[3],
                    "sub": r[4],
                    "created": r[5],
                }
                for r in _NODE_ROWS
            ],
        )
    engine.dispose()
    return empty_database_url


@pytest.fixture
def node_form_url(node_database_url: str) -> str:
    """The same database in the Node service's DATABASE_URL form (plain scheme, ?schema=)."""
    url = make_url(node_database_url).set(drivername="postgresql", query={"schema": "public"})
    return url.render_as_string(hide_password=False)


@pytest.fixture
def adopted(node_database_url: str, node_form_url: str) -> str:
    """The Node database after `upgrade`, run with the Node-form URL."""
    upgrade(node_form_url)
    return node_database_url


_SELECT_CLASSES = (
    'SELECT "id"::text AS id, "qbId", "name", "fullName", "isSubClass", "isActive", '
    '"domainSource", "versionToken", "isSparse", "createdAt", "updatedAt", "fullNameKey" '
    'FROM "QBClass" ORDER BY "id"'
)


def test_rows_are_kept_and_empty_qb_id_becomes_null(
    node_database_url: str, node_form_url: str
) -> None:
    """Every Node row survives with its values; only '' qbIds turn into NULL."""
    before = _rows(node_database_url, _SELECT_CLASSES.replace(', "fullNameKey"', ""))
    upgrade(node_form_url)
    after = _rows(node_database_url, _SELECT_CLASSES)
    assert len(after) == len(_NODE_ROWS) == len(before)
    for old, new in zip(before, after, strict=True):
        expected = dict(old, qbId=None if old["qbId"] == "" else old["qbId"])
        assert {k: v for k, v in new.items() if k != "fullNameKey"} == expected
    assert [r["qbId"] for r in after].count(None) == 2  # the '' row and the NULL row


def test_full_name_key_is_backfilled(adopted: str) -> None:
    """Keys come from fullName (':' or ' / '), else name; a later colliding row keeps NULL."""
    keys = {r["id"]: r["fullNameKey"] for r in _rows(adopted, _SELECT_CLASSES)}
    assert keys == _EXPECTED_KEYS


def test_existing_rows_get_no_sync_jobs(adopted: str) -> None:
    """Node rows were synced by Node; the migration enqueues nothing."""
    assert _rows(adopted, 'SELECT count(*) AS n FROM "ClasssyncJob"') == [{"n": 0}]
    assert _rows(adopted, 'SELECT count(*) AS n FROM "ClasssyncRealm"') == [{"n": 0}]


def test_node_enum_and_other_tables_are_untouched(adopted: str) -> None:
    """The Node database's own enum and tables are neither changed nor reported as drift."""
    enums = snapshot(adopted)["enums"]
    assert enums == [("SyncStatus", "{PENDING,SYNCED,FAILED}")]
    assert _rows(adopted, 'SELECT "id", "status"::text AS status FROM "Invoice" ORDER BY "id"') == [
        {"id": 1, "status": "SYNCED"},
        {"id": 2, "status": "FAILED"},
    ]
    check(adopted)
    assert current(adopted) == head()


def test_adopted_schema_equals_a_fresh_one(adopted: str, postgres_server_url: str) -> None:
    """After adoption, our tables look exactly like those of a database we created ourselves."""
    with fresh_postgres_database(postgres_server_url) as fresh:
        upgrade(fresh)
        expected = snapshot(fresh)
    got = snapshot(adopted)
    node_only = {"Invoice"}
    for part in ("columns", "constraints", "indexes"):
        assert [r for r in got[part] if r[0] not in node_only] == expected[part], part


def test_upgrade_twice_is_a_no_op(adopted: str) -> None:
    """Running the migrations again (every service start does) changes nothing."""
    before = (snapshot(adopted), _rows(adopted, _SELECT_CLASSES))
    upgrade(adopted)
    assert (snapshot(adopted), _rows(adopted, _SELECT_CLASSES)) == before
