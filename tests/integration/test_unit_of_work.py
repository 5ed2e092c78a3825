"""Both SQLAlchemy units of work hand the sync layer store-neutral errors, on a real database."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import insert, text

from classsync.store.database import make_engine, make_session_factory
from classsync.store.models import QBClass, new_id
from classsync.store.unit_of_work import (
    SessionUnitOfWork,
    SqlAlchemyRemoteUnitOfWork,
    SqlAlchemyUnitOfWork,
)
from classsync.sync.clock import SystemClock
from classsync.sync.ports import StoreConflict, StoreUnavailable

pytestmark = pytest.mark.integration

_Work = Callable[[SessionUnitOfWork], None]


@pytest.fixture(params=[SqlAlchemyUnitOfWork, SqlAlchemyRemoteUnitOfWork])
def run_in_uow(
    database_url: str, request: pytest.FixtureRequest
) -> Iterator[Callable[[_Work], None]]:
    """Run some work inside one unit of work (either kind) on a fresh PostgreSQL database."""
    kind: type[SessionUnitOfWork] = request.param
    engine = make_engine(database_url)

    def run(work: _Work) -> None:
        with kind(make_session_factory(engine)) as uow:
            work(uow)

    yield run
    engine.dispose()


def _read_through_a_store(uow: SessionUnitOfWork) -> None:
    # Each kind read through one of its own stores, so the error comes from store code.
    if isinstance(uow, SqlAlchemyRemoteUnitOfWork):
        uow.changes.cdc_mark("realm-1")
    else:
        assert isinstance(uow, SqlAlchemyUnitOfWork)
        uow.jobs.counts()


def _insert_the_same_key_twice(uow: SessionUnitOfWork) -> None:
    row = {"id": new_id(), "name": "A", "fullNameKey": "A", "updatedAt": SystemClock().now()}
    uow._session.execute(insert(QBClass).values(row))
    uow._session.execute(insert(QBClass).values({**row, "id": new_id()}))


def _lose_the_connection(uow: SessionUnitOfWork) -> None:
    uow._session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
    _read_through_a_store(uow)


def _fail_on_our_own(uow: SessionUnitOfWork) -> None:
    _read_through_a_store(uow)
    raise KeyError("ours")


def test_a_unique_key_taken_meanwhile_is_a_store_conflict(
    run_in_uow: Callable[[_Work], None],
) -> None:
    with pytest.raises(StoreConflict):
        run_in_uow(_insert_the_same_key_twice)


def test_a_lost_connection_is_store_unavailable(run_in_uow: Callable[[_Work], None]) -> None:
    with pytest.raises(StoreUnavailable):
        run_in_uow(_lose_the_connection)


def test_errors_that_are_not_the_stores_pass_through_unchanged(
    run_in_uow: Callable[[_Work], None],
) -> None:
    with pytest.raises(KeyError):
        run_in_uow(_fail_on_our_own)
