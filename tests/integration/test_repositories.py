"""Repositories on real databases: identity upserts, ancestors, leased claiming, generations."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from classsync.domain import ClassInput, ErrorCode, QboClass, Rejection, ValidClass, validate
from classsync.store.database import make_engine, make_session_factory
from classsync.store.models import QBClass, SyncJob
from classsync.store.unit_of_work import SqlAlchemyUnitOfWork
from classsync.sync.ports import LinkedClass, StoreConflict, StoredClass

pytestmark = pytest.mark.integration

LEASE = timedelta(seconds=30)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _valid(name: str, full_name: str = "", **fields: object) -> ValidClass:
    result = validate(
        ClassInput(
            name=name,
            full_name=full_name,
            is_sub_class=bool(full_name and full_name != name),
            **fields,
        )  # type: ignore[arg-type]
    )
    assert isinstance(result, ValidClass)
    return result


def _factory(url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(url)
    return engine, make_session_factory(engine)


def _save(sf, items, realm="realm-1"):  # type: ignore[no-untyped-def]
    with SqlAlchemyUnitOfWork(sf) as uow:
        out = uow.classes.save_batch(items, realm, _now())
        uow.commit()
        return out


def _qbo(qb_id: str, token: str = "0") -> QboClass:
    return QboClass(id=qb_id, sync_token=token, name="n", fully_qualified_name="n", active=True)


@pytest.fixture(params=["postgresql", "mysql", "sqlite"])
def any_database_url(request: pytest.FixtureRequest) -> str:
    name = {
        "postgresql": "database_url",
        "mysql": "mysql_database_url",
        "sqlite": "sqlite_database_url",
    }
    return str(request.getfixturevalue(name[request.param]))


class TestSaveBatch:
    def test_same_full_name_in_either_form_is_one_row(self, any_database_url: str) -> None:
        engine, sf = _factory(any_database_url)
        first = _save(sf, [_valid("B", "A:B")])
        second = _save(sf, [_valid("B", "A / B")])
        assert isinstance(first[0], StoredClass)
        assert isinstance(second[0], StoredClass)
        assert first[0].class_id == second[0].class_id
        assert second[0].generation == first[0].generation + 1
        with sf() as session:
            keys = sorted(session.scalars(select(QBClass.full_name_key)))
            assert keys == ["a", "a:b"]  # the ancestor was created once, as a placeholder
            assert (
                session.scalar(select(QBClass.full_name).where(QBClass.full_name_key == "a:b"))
                == "A / B"
            )
        engine.dispose()

    def test_unknown_qb_id_is_refused_and_nothing_is_written_for_it(
        self, database_url: str
    ) -> None:
        engine, sf = _factory(database_url)
        [result] = _save(sf, [_valid("Ghost", qb_id="123")])
        assert isinstance(result, Rejection)
        assert result.code is ErrorCode.UNKNOWN_QB_ID
        with sf() as session:
            assert session.scalars(select(QBClass)).all() == []
        engine.dispose()

    def test_ids_and_timestamps_are_set_by_us_like_prisma_would(self, database_url: str) -> None:
        engine, sf = _factory(database_url)
        [stored] = _save(sf, [_valid("Sales")])
        with sf() as session:
            row = session.get(QBClass, stored.class_id)  # type: ignore[union-attr]
            assert row is not None
            assert row.updated_at is not None
            assert row.created_at is not None
            assert row.qb_id is None  # never "" (the Node unique-index trap)
        engine.dispose()


class TestCaseAndConflicts:
    def test_case_variants_are_one_row_on_every_database(self, any_database_url: str) -> None:
        engine, sf = _factory(any_database_url)
        first = _save(sf, [_valid("Ads", "Marketing / Ads")])
        second = _save(sf, [_valid("MARKETING"), _valid("ads", "marketing:ads")])
        assert isinstance(first[0], StoredClass)
        assert second[1] == StoredClass(class_id=first[0].class_id, generation=2)
        with sf() as session:
            rows = sorted((r.full_name_key, r.name) for r in session.scalars(select(QBClass)))
        assert rows == [("marketing", "MARKETING"), ("marketing:ads", "ads")]
        engine.dispose()

    def test_a_taken_qb_id_is_a_store_conflict_and_its_holder_is_named(
        self, any_database_url: str
    ) -> None:
        engine, sf = _factory(any_database_url)
        holder, other = _save(sf, [_valid("Holder"), _valid("Other")])
        with SqlAlchemyUnitOfWork(sf) as uow:
            jobs = {
                j.class_id: j for j in uow.jobs.claim(owner="w", limit=9, lease=LEASE, now=_now())
            }
            uow.commit()
        with SqlAlchemyUnitOfWork(sf) as uow:
            uow.jobs.record_synced(jobs[holder.class_id], "w", _qbo("77"), _now())
            uow.commit()
        # The unit of work translates the IntegrityError as it is left.
        with pytest.raises(StoreConflict), SqlAlchemyUnitOfWork(sf) as uow:  # noqa: PT012
            uow.jobs.record_synced(jobs[other.class_id], "w", _qbo("77"), _now())
            uow.commit()
        with SqlAlchemyUnitOfWork(sf) as uow:
            found = uow.jobs.qb_id_holder("77", other_than=other.class_id)
            assert found == LinkedClass(class_id=holder.class_id, full_name="Holder")
            assert uow.jobs.qb_id_holder("77", other_than=holder.class_id) is None
            uow.jobs.record_failed(
                jobs[other.class_id],
                "w",
                error_code="QB_ID_CONFLICT",
                error_message="m",
                now=_now(),
            )
            uow.commit()
        with SqlAlchemyUnitOfWork(sf) as uow:
            assert uow.jobs.failed_counts() == {"QB_ID_CONFLICT": 1}
        engine.dispose()


class TestClaiming:
    def test_parents_are_claimed_before_children(self, database_url: str) -> None:
        engine, sf = _factory(database_url)
        _save(sf, [_valid("C", "A:B:C")])
        with SqlAlchemyUnitOfWork(sf) as uow:
            jobs = uow.jobs.claim(owner="w", limit=10, lease=LEASE, now=_now())
            uow.commit()
        assert [j.snapshot.key for j in jobs] == ["a", "a:b", "a:b:c"]
        assert [j.snapshot.full_name for j in jobs] == ["A", "A:B", "A:B:C"]
        engine.dispose()

    def test_a_claim_in_a_realm_takes_one_depth_level(self, any_database_url: str) -> None:
        # The engine's claims become one batch: a sub-class claimed with its parent would only
        # be handed back to wait for the parent's QBO Id.
        engine, sf = _factory(any_database_url)
        _save(sf, [_valid("Dept", "Region:Dept"), _valid("Other")], realm="r")
        with SqlAlchemyUnitOfWork(sf) as uow:
            first = uow.jobs.claim(owner="w", limit=10, lease=LEASE, now=_now(), realm_id="r")
            second = uow.jobs.claim(owner="w", limit=10, lease=LEASE, now=_now(), realm_id="r")
            uow.commit()
        assert sorted(j.snapshot.full_name for j in first) == ["Other", "Region"]
        assert [j.snapshot.full_name for j in second] == ["Region:Dept"]
        engine.dispose()

    @pytest.mark.parametrize("backend", ["database_url", "mysql_database_url"])
    def test_concurrent_workers_never_claim_the_same_job(
        self, backend: str, request: pytest.FixtureRequest
    ) -> None:
        # PostgreSQL and MariaDB 10.6+ both skip rows another transaction holds (SKIP LOCKED).
        engine, sf = _factory(str(request.getfixturevalue(backend)))
        _save(sf, [_valid(f"Class {i}") for i in range(200)])
        claimed: dict[str, list[str]] = {}
        lock = threading.Lock()

        def worker(name: str) -> None:
            while True:
                with SqlAlchemyUnitOfWork(sf) as uow:
                    jobs = uow.jobs.claim(owner=name, limit=7, lease=LEASE, now=_now())
                    uow.commit()
                if not jobs:
                    return
                with lock:
                    claimed.setdefault(name, []).extend(j.class_id for j in jobs)

        threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        every = [cid for ids in claimed.values() for cid in ids]
        assert len(every) == 200
        assert len(set(every)) == 200
        assert len(claimed) > 1
        engine.dispose()

    def test_an_expired_lease_is_reclaimed_as_outcome_unknown(self, database_url: str) -> None:
        engine, sf = _factory(database_url)
        _save(sf, [_valid("Orphaned")])
        now = _now()
        with SqlAlchemyUnitOfWork(sf) as uow:
            [job] = uow.jobs.claim(owner="dead", limit=1, lease=timedelta(seconds=1), now=now)
            uow.commit()
        with SqlAlchemyUnitOfWork(sf) as uow:
            assert uow.jobs.claim(owner="live", limit=1, lease=LEASE, now=now) == []
            [again] = uow.jobs.claim(
                owner="live", limit=1, lease=LEASE, now=now + timedelta(seconds=2)
            )
            uow.commit()
        assert again.class_id == job.class_id
        assert again.outcome_unknown is True
        # The dead worker's late answer must not finish a job it no longer owns.
        with SqlAlchemyUnitOfWork(sf) as uow:
            assert uow.jobs.record_synced(job, "dead", _qbo("77"), _now()) is None
            uow.commit()
        engine.dispose()

    def test_a_change_during_sync_requeues_the_job(self, database_url: str) -> None:
        engine, sf = _factory(database_url)
        _save(sf, [_valid("Moving")])
        with SqlAlchemyUnitOfWork(sf) as uow:
            [job] = uow.jobs.claim(owner="w", limit=1, lease=LEASE, now=_now())
            uow.commit()
        [newer] = _save(sf, [_valid("Moving", is_active=False)])
        with SqlAlchemyUnitOfWork(sf) as uow:
            # The in-progress job was not handed to anyone else meanwhile.
            assert uow.jobs.claim(owner="other", limit=1, lease=LEASE, now=_now()) == []
            recorded = uow.jobs.record_synced(job, "w", _qbo("5", "0"), _now())
            assert recorded is not None
            assert recorded.status == "PENDING"
            uow.commit()
        with SqlAlchemyUnitOfWork(sf) as uow:
            state = uow.jobs.states([job.class_id])[job.class_id]
            assert state.status == "PENDING"
            assert state.generation == newer.generation  # type: ignore[union-attr]
            [next_job] = uow.jobs.claim(
                owner="w", limit=1, lease=LEASE, now=_now() + timedelta(seconds=1)
            )
            assert next_job.snapshot.qb_id == "5"
            assert next_job.snapshot.is_active is False
        engine.dispose()

    def test_a_realm_restricted_claim_leases_only_that_realms_jobs(
        self, any_database_url: str
    ) -> None:
        engine, sf = _factory(any_database_url)
        _save(sf, [_valid("Ours 1"), _valid("Ours 2")], realm="realm-a")
        _save(sf, [_valid("Theirs")], realm="realm-b")
        with SqlAlchemyUnitOfWork(sf) as uow:
            jobs = uow.jobs.claim(owner="w", limit=10, lease=LEASE, now=_now(), realm_id="realm-b")
            uow.commit()
        assert [(j.realm_id, j.snapshot.name) for j in jobs] == [("realm-b", "Theirs")]
        with SqlAlchemyUnitOfWork(sf) as uow:
            rest = uow.jobs.claim(owner="w", limit=10, lease=LEASE, now=_now())
        assert sorted(j.snapshot.name for j in rest) == ["Ours 1", "Ours 2"]
        engine.dispose()


class TestBacklogAge:
    def test_oldest_pending_is_when_the_class_was_accepted_not_its_last_retry(
        self, database_url: str
    ) -> None:
        # Operators alert on backlog age: retries during a QBO outage must not make it look new.
        engine, sf = _factory(database_url)
        accepted = datetime(2026, 1, 1, 12, 0, 0)
        with SqlAlchemyUnitOfWork(sf) as uow:
            uow.classes.save_batch([_valid("Stuck")], "realm-1", accepted)
            uow.classes.save_batch([_valid("Later")], "realm-1", accepted + timedelta(minutes=5))
            uow.commit()
        retried = accepted + timedelta(minutes=10)
        with SqlAlchemyUnitOfWork(sf) as uow:
            jobs = uow.jobs.claim(owner="w", limit=10, lease=LEASE, now=retried)
            for job in jobs:
                uow.jobs.retry_later(
                    job,
                    "w",
                    at=retried + timedelta(minutes=1),
                    error_code="QBO_UNAVAILABLE",
                    error_message="503",
                    count_attempt=True,
                    outcome_unknown=False,
                    now=retried,
                )
            uow.commit()
        with SqlAlchemyUnitOfWork(sf) as uow:
            assert len(jobs) == 2
            assert uow.jobs.oldest_pending() == accepted
        engine.dispose()

    def test_no_backlog_when_everything_is_synced(self, database_url: str) -> None:
        engine, sf = _factory(database_url)
        _save(sf, [_valid("Done")])
        with SqlAlchemyUnitOfWork(sf) as uow:
            [job] = uow.jobs.claim(owner="w", limit=1, lease=LEASE, now=_now())
            assert uow.jobs.oldest_pending() is not None  # in progress is still backlog
            assert uow.jobs.record_synced(job, "w", _qbo("1"), _now()) is not None
            assert uow.jobs.oldest_pending() is None
        engine.dispose()


def test_legacy_empty_qb_id_rows_do_not_block_new_classes(empty_database_url: str) -> None:
    """A Node database may hold qbId = '' (unique!): after migrating, new Classes still insert."""
    from classsync.store.migrate import upgrade

    engine, sf = _factory(empty_database_url)
    with engine.begin() as connection:
        connection.execute(
            text(
                'CREATE TABLE "QBClass" ("id" UUID NOT NULL, "qbId" TEXT, "name" TEXT NOT NULL, '
                '"fullName" TEXT, "isSubClass" BOOLEAN NOT NULL DEFAULT false, "isActive" BOOLEAN '
                'NOT NULL DEFAULT true, "domainSource" TEXT, "versionToken" INTEGER NOT NULL DEFAULT 0, '
                '"isSparse" BOOLEAN NOT NULL DEFAULT false, "createdAt" TIMESTAMP(3) NOT NULL DEFAULT '
                'CURRENT_TIMESTAMP, "updatedAt" TIMESTAMP(3) NOT NULL, CONSTRAINT "QBClass_pkey" PRIMARY KEY ("id"))'
            )
        )
        connection.execute(text('CREATE UNIQUE INDEX "QBClass_qbId_key" ON "QBClass"("qbId")'))
        connection.execute(
            text(
                'INSERT INTO "QBClass" ("id","qbId","name","fullName","updatedAt") VALUES '
                "('6b1c0e1e-0000-4000-8000-000000000001','','Company','Company',now())"
            )
        )
    upgrade(empty_database_url, realm_id="realm-1")  # the realm _save uses
    results = _save(sf, [_valid("Company"), _valid("Other")])
    assert all(isinstance(r, StoredClass) for r in results)
    with sf() as session:
        rows = {r.name: r for r in session.scalars(select(QBClass))}
        assert (
            rows["Company"].id == "6b1c0e1e-0000-4000-8000-000000000001"
        )  # adopted, not duplicated
        assert rows["Company"].qb_id is None
        assert len(session.scalars(select(SyncJob)).all()) == 2
    engine.dispose()


def test_identity_is_per_realm(any_database_url: str) -> None:
    """The same full name and the same QBO Id in two realms are two rows; each realm finds its own."""
    engine, sf = _factory(any_database_url)
    [first] = _save(sf, [_valid("Sales")], realm="realm-a")
    [second] = _save(sf, [_valid("Sales")], realm="realm-b")
    assert isinstance(first, StoredClass)
    assert isinstance(second, StoredClass)
    assert first.class_id != second.class_id
    with sf() as session:
        for class_id in (first.class_id, second.class_id):
            session.get_one(QBClass, class_id).qb_id = "5000000000000000001"
        session.commit()
    # Linked by the same QBO Id in each realm: a rename through qb_id stays in its realm.
    [renamed] = _save(sf, [_valid("Sales East", qb_id="5000000000000000001")], realm="realm-b")
    assert isinstance(renamed, StoredClass)
    assert renamed.class_id == second.class_id
    with SqlAlchemyUnitOfWork(sf) as uow:  # the same QBO Id in another realm is no conflict
        assert uow.jobs.qb_id_holder("5000000000000000001", other_than=first.class_id) is None
    with sf() as session:
        names = {r.realm_id: r.name for r in session.scalars(select(QBClass))}
    assert names == {"realm-a": "Sales", "realm-b": "Sales East"}
    [unknown] = _save(sf, [_valid("Other", qb_id="5000000000000000001")], realm="realm-c")
    assert isinstance(unknown, Rejection)
    assert unknown.code == "UNKNOWN_QB_ID"
    engine.dispose()


def test_due_realms_lists_each_realm_with_due_work_once(any_database_url: str) -> None:
    # Read as a skip from realm to realm over the per-realm claim index (migration 0009).
    engine, sf = _factory(any_database_url)
    _save(sf, [_valid(f"A {i}") for i in range(5)], realm="realm-a")
    _save(sf, [_valid("C")], realm="realm-c")
    _save(sf, [_valid("Later")], realm="realm-later")
    _save(sf, [_valid("Leased")], realm="realm-leased")
    with SqlAlchemyUnitOfWork(sf) as uow:
        [later] = uow.jobs.claim(
            owner="w", limit=1, lease=LEASE, now=_now(), realm_id="realm-later"
        )
        uow.jobs.retry_later(
            later,
            "w",
            at=_now() + timedelta(hours=1),
            error_code="QBO_UNAVAILABLE",
            error_message="down",
            count_attempt=True,
            outcome_unknown=False,
            now=_now(),
        )
        uow.jobs.claim(
            owner="dead", limit=1, lease=timedelta(seconds=1), now=_now(), realm_id="realm-leased"
        )
        uow.commit()
    with SqlAlchemyUnitOfWork(sf) as uow:
        assert uow.jobs.due_realms(_now()) == ["realm-a", "realm-c"]
        # The dead worker's lease runs out: its realm is due again.
        assert uow.jobs.due_realms(_now() + timedelta(seconds=2)) == [
            "realm-a",
            "realm-c",
            "realm-leased",
        ]
    engine.dispose()
