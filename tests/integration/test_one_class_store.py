"""The one-statement store (PostgreSQL): the same row and job as the general path, or nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from classsync.store.models import QBClass, SyncJob
from classsync.store.one_class import PostgresOneClassStore
from classsync.sync.ports import JobLease, StoredClass
from tests.integration.test_bulk_insert_copy import _stored
from tests.integration.test_repositories import _factory, _now, _save, _valid

pytestmark = pytest.mark.integration


def _clear(sf) -> None:  # type: ignore[no-untyped-def]
    with sf() as session:
        session.execute(SyncJob.__table__.delete())
        session.execute(QBClass.__table__.delete())
        session.commit()


def test_stores_what_the_general_path_stores(database_url: str) -> None:
    engine, sf = _factory(database_url)
    item = _valid("Marketing", "Marketing", domain_source="QBO")
    stored = PostgresOneClassStore(engine).store_new(item, "realm-1", _now(), None)
    assert isinstance(stored, StoredClass)
    assert stored.generation == 1
    assert stored.claimed is None
    one_statement = _stored(sf)
    _clear(sf)
    _save(sf, [item])
    assert _stored(sf) == one_statement
    assert one_statement[0][7] == "PENDING"
    engine.dispose()


def test_a_lease_is_written_with_the_job_and_the_claim_is_returned(database_url: str) -> None:
    engine, sf = _factory(database_url)
    now = _now()
    lease = JobLease(owner="proc-h7", until=now + timedelta(seconds=60))
    stored = PostgresOneClassStore(engine).store_new(_valid("Sales"), "realm-1", now, lease)
    assert stored is not None
    assert stored.claimed is not None
    assert stored.claimed.class_id == stored.class_id
    assert stored.claimed.snapshot.key == "sales"
    assert stored.claimed.parent is None
    assert not stored.claimed.outcome_unknown
    with sf() as session:
        job = session.scalars(select(SyncJob)).one()
    assert (job.status, job.lease_owner, job.generation) == ("IN_PROGRESS", "proc-h7", 1)
    assert job.lease_expires_at is not None
    engine.dispose()


def test_a_known_name_or_a_sub_class_is_left_to_the_general_path(database_url: str) -> None:
    engine, sf = _factory(database_url)
    store = PostgresOneClassStore(engine)
    _save(sf, [_valid("Ops")])
    assert store.store_new(_valid("OPS"), "realm-1", _now(), None) is None  # same key, any case
    assert store.store_new(_valid("B", "A:B"), "realm-1", _now(), None) is None
    assert store.store_new(_valid("Ghost", qb_id="9"), "realm-1", _now(), None) is None
    assert store.store_new(_valid("Ops"), "realm-2", _now(), None) is not None  # another realm
    assert len(_stored(sf)) == 2
    engine.dispose()


def test_a_name_the_caller_last_sent_is_left_to_the_general_path(database_url: str) -> None:
    engine, sf = _factory(database_url)
    [first] = _save(sf, [_valid("Old")])
    assert isinstance(first, StoredClass)
    with sf() as session:  # renamed in QBO since: the caller's last key stays on the row
        row = session.get(QBClass, first.class_id)
        assert row is not None
        row.full_name_key, row.name, row.full_name = "renamed", "Renamed", "Renamed"
        session.commit()
    assert PostgresOneClassStore(engine).store_new(_valid("Old"), "realm-1", _now(), None) is None
    engine.dispose()
