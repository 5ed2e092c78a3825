"""A batch's outcomes written in one transaction, on every database."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text, update

from classsync.store.models import QBClass, SyncJob
from classsync.store.unit_of_work import SqlAlchemyUnitOfWork
from classsync.sync.ports import JobStatus
from tests.integration.test_repositories import (
    LEASE,
    _factory,
    _now,
    _qbo,
    _save,
    _valid,
    any_database_url,
)

pytestmark = pytest.mark.integration
__all__ = ["any_database_url"]  # the fixture, imported for this module's tests


def test_finished_requeued_and_lost_jobs_in_one_transaction(any_database_url: str) -> None:
    engine, sf = _factory(any_database_url)
    done, moved, lost = _save(sf, [_valid("Done"), _valid("Moved"), _valid("Lost")])
    with SqlAlchemyUnitOfWork(sf) as uow:
        jobs = {j.class_id: j for j in uow.jobs.claim(owner="w", limit=9, lease=LEASE, now=_now())}
        uow.commit()
    _save(sf, [_valid("Moved", is_active=False)])  # generation 2 arrives during the call
    with sf() as session:  # Lost's lease ran out and another worker holds it
        session.execute(
            update(SyncJob).where(SyncJob.class_id == lost.class_id).values(lease_owner="other")
        )
        session.commit()
    synced = [(jobs[c.class_id], _qbo(str(50 + i))) for i, c in enumerate((done, moved, lost))]
    with SqlAlchemyUnitOfWork(sf) as uow:
        states = uow.jobs.record_synced_many(synced, "w", _now())
        uow.commit()
    assert states[done.class_id] is not None
    assert states[done.class_id].status == JobStatus.SYNCED.value  # type: ignore[union-attr]
    assert states[moved.class_id] is not None
    assert states[moved.class_id].status == JobStatus.PENDING.value  # type: ignore[union-attr]
    assert states[lost.class_id] is None
    with sf() as session:
        jobs_now = {j.class_id: j for j in session.scalars(select(SyncJob))}
        links = {r.id: r.qb_id for r in session.scalars(select(QBClass))}
    assert jobs_now[done.class_id].status == JobStatus.SYNCED.value
    assert (jobs_now[moved.class_id].status, jobs_now[moved.class_id].generation) == ("PENDING", 2)
    assert (jobs_now[lost.class_id].status, jobs_now[lost.class_id].lease_owner) == (
        "IN_PROGRESS",
        "other",
    )
    assert links == {done.class_id: "50", moved.class_id: "51", lost.class_id: "52"}
    engine.dispose()


@pytest.mark.parametrize("url_fixture", ["database_url", "mysql_database_url"])
def test_a_row_an_ingest_holds_is_skipped_not_waited_for(
    url_fixture: str, request: pytest.FixtureRequest
) -> None:
    engine, sf = _factory(request.getfixturevalue(url_fixture))
    free, held = _save(sf, [_valid("Free"), _valid("Held")])
    with SqlAlchemyUnitOfWork(sf) as uow:
        jobs = {j.class_id: j for j in uow.jobs.claim(owner="w", limit=9, lease=LEASE, now=_now())}
        uow.commit()
    with sf() as ingest:  # another transaction holds Held's row
        ingest.execute(
            text('UPDATE "QBClass" SET "updatedAt" = "updatedAt" WHERE id = :id')
            if engine.dialect.name == "postgresql"
            else text("UPDATE QBClass SET updatedAt = updatedAt WHERE id = :id"),
            {"id": held.class_id},
        )
        with SqlAlchemyUnitOfWork(sf) as uow:
            synced = [(jobs[free.class_id], _qbo("60")), (jobs[held.class_id], _qbo("61"))]
            states = uow.jobs.record_synced_many(synced, "w", _now())
            uow.commit()
        ingest.rollback()
    assert list(states) == [free.class_id]
    engine.dispose()
