"""The one-statement record of a synced job (PostgreSQL): what the unit of work's record writes."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from classsync.store.models import QBClass, SyncJob
from classsync.store.one_outcome import PostgresOneStatementOutcome
from classsync.store.unit_of_work import SqlAlchemyUnitOfWork
from classsync.sync.ports import ClaimedJob, StoreConflict
from tests.integration.test_repositories import LEASE, _factory, _now, _qbo, _save, _valid

pytestmark = pytest.mark.integration


def _claim_all(sf) -> dict[str, ClaimedJob]:  # type: ignore[no-untyped-def]
    with SqlAlchemyUnitOfWork(sf) as uow:
        jobs = uow.jobs.claim(owner="w", limit=9, lease=LEASE, now=_now())
        uow.commit()
    return {job.snapshot.name: job for job in jobs}


def _rows(sf) -> dict[str, tuple[object, ...]]:  # type: ignore[no-untyped-def]
    with sf() as session:
        rows = session.execute(
            select(
                QBClass.name,
                QBClass.qb_id,
                QBClass.version_token,
                QBClass.qbo_name,
                QBClass.qbo_active,
                SyncJob.status,
                SyncJob.generation,
                SyncJob.attempts,
                SyncJob.lease_owner,
                SyncJob.lease_expires_at,
                SyncJob.synced_at.is_(None),
            ).join(SyncJob, SyncJob.class_id == QBClass.id)
        )
        return {row[0]: tuple(row[1:]) for row in rows}


def test_writes_what_the_unit_of_work_writes(database_url: str) -> None:
    engine, sf = _factory(database_url)
    _save(sf, [_valid("ByUow"), _valid("ByOne")])
    jobs = _claim_all(sf)
    with SqlAlchemyUnitOfWork(sf) as uow:
        by_uow = uow.jobs.record_synced(jobs["ByUow"], "w", _qbo("1", "3"), _now())
        uow.commit()
    by_one = PostgresOneStatementOutcome(engine).record_synced(
        jobs["ByOne"], "w", _qbo("2", "3"), _now()
    )
    assert by_one is not None
    assert by_uow is not None
    assert (
        (by_one.status, by_one.version_token)
        == (by_uow.status, by_uow.version_token)
        == (
            "SYNCED",
            3,
        )
    )
    rows = _rows(sf)
    assert rows["ByOne"][1:] == rows["ByUow"][1:]
    assert rows["ByOne"][0] == "2"
    engine.dispose()


def test_a_newer_version_is_queued_again_and_a_lost_lease_records_only_the_link(
    database_url: str,
) -> None:
    engine, sf = _factory(database_url)
    _save(sf, [_valid("Moving"), _valid("Lost")])
    jobs = _claim_all(sf)
    _save(sf, [_valid("Moving", is_active=False)])  # generation 2 while generation 1 syncs
    outcome = PostgresOneStatementOutcome(engine)
    requeued = outcome.record_synced(jobs["Moving"], "w", _qbo("5"), _now())
    assert requeued is not None
    assert requeued.status == "PENDING"
    assert outcome.record_synced(jobs["Lost"], "someone-else", _qbo("6"), _now()) is None
    rows = _rows(sf)
    assert rows["Moving"][0] == "5"
    assert rows["Moving"][4:7] == ("PENDING", 2, 0)
    assert rows["Lost"][0] == "6"
    assert rows["Lost"][4] == "IN_PROGRESS"  # still the other worker's
    engine.dispose()


def test_a_qb_id_another_row_holds_is_a_store_conflict(database_url: str) -> None:
    engine, sf = _factory(database_url)
    _save(sf, [_valid("Holder"), _valid("Other")])
    jobs = _claim_all(sf)
    outcome = PostgresOneStatementOutcome(engine)
    assert outcome.record_synced(jobs["Holder"], "w", _qbo("77"), _now()) is not None
    with pytest.raises(StoreConflict):
        outcome.record_synced(jobs["Other"], "w", _qbo("77"), _now())
    assert _rows(sf)["Other"][4] == "IN_PROGRESS"
    engine.dispose()
