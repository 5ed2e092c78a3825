"""The same migrations and models work on PostgreSQL, MariaDB/MySQL and SQLite."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from classsync.store.database import make_engine, make_session_factory
from classsync.store.migrate import check, current, downgrade, head, upgrade
from classsync.store.models import QBClass, QboRealm, SyncJob, utcnow

pytestmark = pytest.mark.integration


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(empty_url: str) -> None:
    """Migrations apply, report no drift, undo cleanly, and apply again."""
    upgrade(empty_url)
    check(empty_url)
    assert {"QBClass", "ClasssyncJob", "ClasssyncRealm"} <= _tables(empty_url)
    downgrade(empty_url, "base")
    assert current(empty_url) is None
    assert not {"QBClass", "ClasssyncJob", "ClasssyncRealm"} & _tables(empty_url)
    upgrade(empty_url)
    check(empty_url)
    assert current(empty_url) == head()


def test_node_rows_are_adopted(empty_url: str) -> None:
    """'' qbIds become NULL and fullNameKey is backfilled case-folded, whatever the database."""
    upgrade(empty_url, "0001_node_qbclass")
    node = sa.table(
        "QBClass",
        *(sa.column(c) for c in ("id", "qbId", "name", "fullName", "createdAt", "updatedAt")),
    )
    stamp = datetime(2024, 5, 1, 12, 0, 0)
    rows = [
        ("", "Orphan", None),
        ("7", "Sales", "Sales"),
        ("8", "East", "Sales / East"),
        (None, "East", "Sales:East"),  # later duplicate of the path above: key stays NULL
        (None, "sales", "sales"),  # a case variant of "Sales" (linked to QBO): loses its key
        (None, "Marketing", "Marketing"),  # older, but its variant below is linked to QBO
        ("12", "MARKETING", "MARKETING"),
    ]
    ids = [str(uuid.UUID(int=i + 1)) for i in range(len(rows))]
    engine = make_engine(empty_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                node.insert(),
                [
                    {
                        "id": ids[i],
                        "qbId": qb_id,
                        "name": name,
                        "fullName": full,
                        "createdAt": stamp + timedelta(seconds=i),
                        "updatedAt": stamp,
                    }
                    for i, (qb_id, name, full) in enumerate(rows)
                ],
            )
        engine.dispose()
        upgrade(empty_url)
        check(empty_url)
        with make_session_factory(engine)() as session:
            got = {c.id: (c.qb_id, c.full_name_key) for c in session.scalars(sa.select(QBClass))}
    finally:
        engine.dispose()
    # Keys are case-folded (0006); of rows naming one QBO class, the one linked to QBO keeps it.
    assert got == {
        ids[0]: (None, "orphan"),
        ids[1]: ("7", "sales"),
        ids[2]: ("8", "sales:east"),
        ids[3]: (None, None),
        ids[4]: (None, None),
        ids[5]: (None, None),
        ids[6]: ("12", "marketing"),
    }


def test_orm_round_trip(migrated_url: str) -> None:
    """Python-side defaults fill what Prisma's client used to; FK cascade and uniques hold."""
    engine = make_engine(migrated_url)
    sessions = make_session_factory(engine)
    try:
        before = utcnow()
        with sessions.begin() as session:
            klass = QBClass(name="Sales", full_name_key="Sales", qb_id="42")
            session.add(klass)
            session.flush()
            session.add(SyncJob(class_id=klass.id, realm_id="9130"))
            session.add(QboRealm(realm_id="9130", refresh_token="secret-refresh"))
        with sessions() as session:
            stored = session.get_one(QBClass, klass.id)
            job = session.get_one(SyncJob, klass.id)
            realm = session.get_one(QboRealm, "9130")
        assert uuid.UUID(stored.id).version == 4
        assert (stored.is_active, stored.is_sub_class, stored.version_token) == (True, False, 0)
        assert stored.created_at.tzinfo is None
        assert before <= stored.updated_at <= utcnow()
        assert (job.status, job.generation, job.depth, job.attempts) == ("PENDING", 1, 1, 0)
        assert job.outcome_unknown is False
        assert realm.status == "CONNECTED"
        assert "secret" not in repr(realm)

        with pytest.raises(IntegrityError), sessions.begin() as session:
            session.add(QBClass(name="Other", qb_id="42"))
        with pytest.raises(IntegrityError), sessions.begin() as session:
            session.add(QBClass(name="Sales", full_name_key="Sales"))

        with sessions.begin() as session:
            session.execute(sa.delete(QBClass).where(QBClass.id == klass.id))
        with sessions() as session:
            assert session.get(SyncJob, klass.id) is None  # ON DELETE CASCADE (SQLite: FKs on)
    finally:
        engine.dispose()


def test_server_clock_is_utc(migrated_url: str) -> None:
    """CURRENT_TIMESTAMP defaults land in naive UTC even when the server's zone is not UTC."""
    engine = make_engine(migrated_url)
    try:
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                database = conn.execute(sa.text("SELECT current_database()")).scalar_one()
                conn.execute(sa.text(f"ALTER DATABASE \"{database}\" SET timezone = 'Asia/Tokyo'"))
                conn.commit()
            engine.dispose()
        realm = sa.table("ClasssyncRealm", sa.column("realmId"), sa.column("updatedAt"))
        with engine.begin() as conn:
            conn.execute(realm.insert().values(realmId="1", updatedAt=utcnow()))
            created = conn.execute(
                sa.select(sa.column("createdAt")).select_from(sa.table("ClasssyncRealm"))
            ).scalar_one()
        if isinstance(created, str):  # SQLite hands back text from a raw column
            created = datetime.fromisoformat(created)
        assert abs(created - utcnow()) < timedelta(minutes=2)
    finally:
        engine.dispose()
