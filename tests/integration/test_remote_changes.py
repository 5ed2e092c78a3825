"""The remote-change store and webhook inbox on real databases (PostgreSQL, MariaDB, SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from classsync.domain import ClassInput, QboClass, ValidClass, WebhookNotice, validate
from classsync.store.database import make_engine, make_session_factory
from classsync.store.models import QBClass, SyncJob
from classsync.store.unit_of_work import SqlAlchemyRemoteUnitOfWork, SqlAlchemyUnitOfWork
from classsync.sync.conflicts import ConflictCounter
from classsync.sync.remote_changes import RemoteChangeApplier

pytestmark = pytest.mark.integration

REALM = "realm-1"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None).replace(microsecond=0)


@pytest.fixture(params=["postgresql", "mysql", "sqlite"])
def any_database_url(request: pytest.FixtureRequest) -> str:
    name = {
        "postgresql": "database_url",
        "mysql": "mysql_database_url",
        "sqlite": "sqlite_database_url",
    }[request.param]
    return str(request.getfixturevalue(name))


@pytest.fixture
def session_factory(any_database_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(any_database_url)
    yield make_session_factory(engine)
    engine.dispose()


def _store(sf, *full_names: str) -> None:  # type: ignore[no-untyped-def]
    items = []
    for full_name in full_names:
        checked = validate(
            ClassInput(
                name=full_name.split(":")[-1], full_name=full_name, is_sub_class=":" in full_name
            )
        )
        assert isinstance(checked, ValidClass)
        items.append(checked)
    with SqlAlchemyUnitOfWork(sf) as uow:
        uow.classes.save_batch(items, REALM, _now())
        uow.commit()


def _link(sf, full_name: str, qb_id: str, token: int = 0, parent: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """As if the engine had synced the row: QBO's Id, SyncToken and values, job SYNCED."""
    with sf() as session:
        row = session.scalars(
            select(QBClass).where(QBClass.full_name_key == full_name.casefold())
        ).one()
        row.qb_id, row.version_token = qb_id, token
        row.qbo_name, row.qbo_parent_id, row.qbo_active = row.name, parent, row.is_active
        job = session.get(SyncJob, row.id)
        job.status = "SYNCED"
        session.commit()


def _rows(sf) -> dict[str, QBClass]:  # type: ignore[no-untyped-def]
    with sf() as session:
        return {row.qb_id or row.full_name: row for row in session.scalars(select(QBClass))}


def _qbo(qb_id: str, name: str, token: int, fqn: str | None = None, **fields: object) -> QboClass:
    fields.setdefault("active", True)
    return QboClass(qb_id, str(token), name, fqn or name, **fields)  # type: ignore[arg-type]


def test_a_rename_moves_the_sub_classes_and_a_create_adds_a_synced_row(session_factory) -> None:  # type: ignore[no-untyped-def]
    sf = session_factory
    _store(sf, "Dept", "Dept:Team", "Dept:Team:Pod")
    _link(sf, "Dept", "1")
    _link(sf, "Dept:Team", "2", parent="1")
    _link(sf, "Dept:Team:Pod", "3", parent="2")
    applier = RemoteChangeApplier(lambda: SqlAlchemyRemoteUnitOfWork(sf), ConflictCounter())
    mark = _now()
    applied = applier.apply(
        REALM,
        [_qbo("1", "Division", 1), _qbo("9", "New_%", 0, "Division:New_%", parent_id="1")],
        cdc_mark=mark,
    )
    assert applied == 2
    rows = _rows(sf)
    assert [rows[i].full_name for i in "1239"] == [
        "Division",
        "Division:Team",
        "Division:Team:Pod",
        "Division:New_%",
    ]
    assert [rows[i].full_name_key for i in "1239"] == [
        "division",
        "division:team",
        "division:team:pod",
        "division:new_%",
    ]
    with sf() as session:
        assert session.get(SyncJob, rows["9"].id).status == "SYNCED"
    with SqlAlchemyRemoteUnitOfWork(sf) as uow:
        assert uow.changes.cdc_mark(REALM) == mark
    # The same report again changes nothing; an older mark never moves it back.
    assert applier.apply(REALM, [_qbo("1", "Division", 1)], cdc_mark=mark - timedelta(hours=1)) == 0
    with SqlAlchemyRemoteUnitOfWork(sf) as uow:
        assert uow.changes.cdc_mark(REALM) == mark


def test_the_inbox_stores_each_event_id_once(session_factory) -> None:  # type: ignore[no-untyped-def]
    sf = session_factory
    notices = [
        WebhookNotice("e1", REALM, "Class", "1", "updated"),
        WebhookNotice("e1", REALM, "Class", "1", "updated"),
        WebhookNotice("e2", REALM, "Class", "2", "created"),
    ]
    for expected in (2, 0):
        with SqlAlchemyRemoteUnitOfWork(sf) as uow:
            assert uow.inbox.add(notices, _now()) == expected
            uow.commit()
    with SqlAlchemyRemoteUnitOfWork(sf) as uow:
        assert [n.event_id for n in uow.inbox.due(10, _now())] == ["e1", "e2"]
        uow.inbox.mark_processed(["e1"], _now())
        uow.commit()
    with SqlAlchemyRemoteUnitOfWork(sf) as uow:
        assert [n.event_id for n in uow.inbox.due(10, _now())] == ["e2"]
        assert uow.inbox.waiting() == 1
