"""Migration 0006: identity keys case-folded; rows that turn out to be one QBO class keep their data."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from classsync.store.database import make_engine
from classsync.store.migrate import check, downgrade, upgrade
from tests.fixtures.database import fresh_mysql_database

pytestmark = pytest.mark.integration

_CLASS = sa.table(
    "QBClass",
    *(
        sa.column(c)
        for c in ("id", "qbId", "name", "fullName", "fullNameKey", "createdAt", "updatedAt")
    ),
)
_JOB = sa.table(
    "ClasssyncJob",
    *(
        sa.column(c)
        for c in (
            "classId",
            "realmId",
            "status",
            "lastErrorCode",
            "lastErrorMessage",
            "updatedAt",
        )
    ),
)
# (qbId, name, key as stored before 0006, job status or None), oldest first.
_ROWS: list[tuple[str | None, str, str, str | None]] = [
    ("7", "Sales", "Sales", "SYNCED"),
    (None, "sales", "sales", "PENDING"),  # looped before: QBO answered with row 0's Id
    (None, "Marketing", "Marketing", "PENDING"),
    ("12", "MARKETING", "MARKETING", "SYNCED"),  # linked to QBO: it keeps the key
    (None, "Ops", "Ops", None),
]


def _seed(url: str) -> list[str]:
    """Rows as PostgreSQL or SQLite could hold them at 0004 (case variants under distinct keys)."""
    upgrade(url, "0004_claim_index")
    stamp = datetime(2026, 1, 1)
    ids = [str(uuid.UUID(int=i + 1)) for i in range(len(_ROWS))]
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for i, (qb_id, name, key, status) in enumerate(_ROWS):
                conn.execute(
                    _CLASS.insert().values(
                        id=ids[i],
                        qbId=qb_id,
                        name=name,
                        fullName=name,
                        fullNameKey=key,
                        createdAt=stamp + timedelta(seconds=i),
                        updatedAt=stamp,
                    )
                )
                if status:
                    conn.execute(
                        _JOB.insert().values(
                            classId=ids[i], realmId="9130", status=status, updatedAt=stamp
                        )
                    )
    finally:
        engine.dispose()
    return ids


def _state(url: str) -> tuple[dict[str, tuple[object, ...]], dict[str, tuple[object, ...]]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            classes = {
                str(r.id): (r.qbId, r.name, r.fullNameKey)
                for r in conn.execute(sa.select(_CLASS)).all()
            }
            jobs = {
                str(r.classId): (r.status, r.lastErrorCode, r.lastErrorMessage)
                for r in conn.execute(sa.select(_JOB)).all()
            }
    finally:
        engine.dispose()
    return classes, jobs


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_keys_are_case_folded_and_a_collision_keeps_every_row(
    dialect: str, request: pytest.FixtureRequest, tmp_path: object
) -> None:
    url = (
        request.getfixturevalue("empty_database_url")
        if dialect == "postgresql"
        else f"sqlite:///{tmp_path}/keys.db"
    )
    ids = _seed(url)
    upgrade(url)
    check(url)
    classes, jobs = _state(url)
    assert classes == {  # every row and value kept; one key per QBO class
        ids[0]: ("7", "Sales", "sales"),
        ids[1]: (None, "sales", None),
        ids[2]: (None, "Marketing", None),
        ids[3]: ("12", "MARKETING", "marketing"),
        ids[4]: (None, "Ops", "ops"),
    }
    assert jobs[ids[0]] == ("SYNCED", None, None)
    assert jobs[ids[3]] == ("SYNCED", None, None)
    for loser, keeper, keeper_name in ((ids[1], ids[0], "Sales"), (ids[2], ids[3], "MARKETING")):
        status, code, message = jobs[loser]
        assert (status, code) == ("FAILED", "DUPLICATE_NAME")
        assert keeper in str(message)
        assert repr(keeper_name) in str(message)
    downgrade(url, "0004_claim_index")
    classes, _ = _state(url)
    assert [classes[i][2] for i in ids] == ["Sales", None, None, "MARKETING", "Ops"]


def test_the_key_index_refuses_a_case_variant_on_every_database(migrated_url: str) -> None:
    """Stored keys are case-folded by the domain; the index then compares them exactly."""
    engine = make_engine(migrated_url)
    stamp = datetime(2026, 1, 1)
    try:
        with engine.begin() as conn:
            for key in ("café", "cafe", "strasse"):  # distinct keys stay distinct everywhere
                conn.execute(
                    _CLASS.insert().values(
                        id=str(uuid.uuid4()), name=key, fullNameKey=key, updatedAt=stamp
                    )
                )
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(
                _CLASS.insert().values(
                    id=str(uuid.uuid4()), name="Café", fullNameKey="café", updatedAt=stamp
                )
            )
    finally:
        engine.dispose()


@pytest.mark.mysql
def test_a_mariadb_key_column_from_before_0006_becomes_exact_and_case_folded(
    mysql_server_url: str,
) -> None:
    """Databases migrated before 0006 compared keys with the table's case-insensitive collation."""
    with fresh_mysql_database(mysql_server_url) as url:
        upgrade(url, "0004_claim_index")
        engine = make_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "ALTER TABLE `QBClass` MODIFY `fullNameKey` VARCHAR(512) "
                        "COLLATE utf8mb4_unicode_ci NULL"
                    )
                )
                conn.execute(
                    _CLASS.insert().values(
                        id=str(uuid.uuid4()),
                        name="Sales",
                        fullNameKey="Sales",
                        updatedAt=datetime(2026, 1, 1),
                    )
                )
            upgrade(url)
            check(url)
            with engine.connect() as conn:
                assert conn.execute(sa.select(_CLASS.c.fullNameKey)).scalars().all() == ["sales"]
                collation = conn.execute(
                    sa.text(
                        "SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE "
                        "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'QBClass' "
                        "AND COLUMN_NAME = 'fullNameKey'"
                    )
                ).scalar()
            assert collation == "utf8mb4_bin"
        finally:
            engine.dispose()
