"""Bulk inserts on PostgreSQL: COPY for large ClassRequests, the same rows as the INSERT."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from classsync.store import bulk_insert
from classsync.store.models import QBClass, SyncJob
from classsync.store.statements import CLASS
from classsync.store.unit_of_work import SqlAlchemyUnitOfWork
from classsync.sync.ports import StoreConflict
from tests.integration.test_repositories import _factory, _now, _save, _valid

pytestmark = pytest.mark.integration


def _stored(sf) -> list[tuple[object, ...]]:  # type: ignore[no-untyped-def]
    with sf() as session:
        rows = session.execute(
            select(
                QBClass.full_name_key,
                QBClass.name,
                QBClass.full_name,
                QBClass.is_sub_class,
                QBClass.is_active,
                QBClass.qb_id,
                QBClass.version_token,
                SyncJob.status,
                SyncJob.depth,
                SyncJob.generation,
            ).join(SyncJob, SyncJob.class_id == QBClass.id)
        )
        return sorted(tuple(r) for r in rows)


def _family(tag: str, size: int) -> list:  # type: ignore[type-arg]
    items = [_valid(f"{tag}P")]
    items += [_valid(f"C{i}", f"{tag}P:C{i}") for i in range(size - 1)]
    return items


def test_copy_stores_what_the_insert_stores(database_url: str) -> None:
    engine, sf = _factory(database_url)
    size = bulk_insert.COPY_MIN_ROWS + 36
    _save(sf, _family("copy", size))  # COPY: both tables get ``size`` rows
    copied = _stored(sf)
    assert len(copied) == size
    with sf() as session:
        session.execute(SyncJob.__table__.delete())
        session.execute(QBClass.__table__.delete())
        session.commit()
    for start in range(0, size, bulk_insert.COPY_MIN_ROWS - 1):  # below the threshold: INSERT
        _save(sf, _family("copy", size)[start : start + bulk_insert.COPY_MIN_ROWS - 1])
    assert _stored(sf) == copied
    engine.dispose()


def test_a_unique_key_refused_during_copy_is_a_store_conflict(database_url: str) -> None:
    engine, sf = _factory(database_url)
    [taken] = _save(sf, [_valid("Taken")])
    now = _now()
    rows = [
        {
            "id": str(uuid.uuid4()),
            "name": f"N{i}",
            "fullNameKey": "taken" if i == bulk_insert.COPY_MIN_ROWS else f"n{i}",
            "createdAt": now,
            "updatedAt": now,
        }
        for i in range(bulk_insert.COPY_MIN_ROWS + 1)
    ]
    with pytest.raises(StoreConflict), SqlAlchemyUnitOfWork(sf) as uow:  # noqa: PT012
        bulk_insert.insert_rows(uow.classes._session, CLASS, rows)  # type: ignore[attr-defined]
        uow.commit()
    with sf() as session:
        assert session.scalars(select(QBClass.id)).all() == [taken.class_id]  # type: ignore[union-attr]
    engine.dispose()
