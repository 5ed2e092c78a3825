"""GetClasses / WatchClasses end to end: real server, real channel, real PostgreSQL, the sandbox."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from classsync.api._generated import class_service_pb2 as pb
from classsync.api.convert import SUCCESS_MESSAGE
from classsync.api.realm import REALM_KEY
from tests.e2e.conftest import Service, klass
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

NO_WAIT = [("x-classsync-wait-seconds", "0")]


def _get(service: Service, realm_id: str | None = None, **keys: list[str]) -> pb.ClassResponse:
    metadata = [(REALM_KEY, realm_id)] if realm_id else []
    return service.stub.GetClasses(pb.GetClassesRequest(**keys), metadata=metadata, timeout=10)


def _qbo_by_fqn(service: Service) -> dict[str, dict[str, Any]]:
    return {c["FullyQualifiedName"]: c for c in service.qbo_classes()}


@pytest.fixture
def company(service: Service) -> dict[str, pb.ClassResult]:
    """'Company' and 'Company / Software Dept', created and synced through CreateClass."""
    [reply] = service.send([klass("Company"), klass("Software Dept", "Company / Software Dept")])
    assert reply.message == SUCCESS_MESSAGE
    return {r.name: r for r in reply.results}


class TestGetClasses:
    def test_by_local_id(self, service: Service, company: dict[str, pb.ClassResult]) -> None:
        child = company["Software Dept"]
        reply = _get(service, ids=[child.id])
        [result] = reply.results
        qbo = _qbo_by_fqn(service)["Company:Software Dept"]
        assert (result.status, result.id, result.qb_id) == ("SYNCED", child.id, qbo["Id"])
        assert result.sync_token == qbo["SyncToken"]
        assert (result.name, result.full_name) == ("Software Dept", "Company / Software Dept")
        assert (result.error_code, result.stream_index, result.request_index) == ("", 0, 0)
        assert list(reply.ids) == [child.id]
        assert reply.message == "1 Class found: 1 SYNCED"

    def test_by_qb_id(self, service: Service, company: dict[str, pb.ClassResult]) -> None:
        parent = company["Company"]
        [result] = _get(service, qb_ids=[parent.qb_id]).results
        assert (result.id, result.status, result.name) == (parent.id, "SYNCED", "Company")

    @pytest.mark.parametrize("form", ["Company:Software Dept", "Company / Software Dept"])
    def test_by_full_name_in_either_form(
        self, service: Service, company: dict[str, pb.ClassResult], form: str
    ) -> None:
        [result] = _get(service, full_names=[form]).results
        assert result.id == company["Software Dept"].id
        assert result.qb_id == company["Software Dept"].qb_id

    def test_mixed_keys_answer_each_class_once_in_key_order(
        self, service: Service, company: dict[str, pb.ClassResult]
    ) -> None:
        parent, child = company["Company"], company["Software Dept"]
        reply = _get(
            service,
            ids=[child.id],
            qb_ids=[parent.qb_id, child.qb_id],
            full_names=["Company"],
        )
        assert [(r.id, r.stream_index, r.request_index) for r in reply.results] == [
            (child.id, 0, 0),
            (parent.id, 1, 0),
        ]
        assert reply.message == "2 Classes found: 2 SYNCED"

    def test_keys_that_find_nothing_are_not_found_with_the_key(
        self, service: Service, company: dict[str, pb.ClassResult]
    ) -> None:
        missing_id = str(uuid.uuid4())
        reply = _get(
            service,
            ids=[missing_id, "not-a-uuid", company["Company"].id],
            qb_ids=["999999999"],
            full_names=["Company / Nowhere"],
        )
        statuses = [(r.status, r.error_code) for r in reply.results]
        assert (
            statuses
            == [("NOT_FOUND", "NOT_FOUND")] * 2
            + [("SYNCED", "")]
            + [("NOT_FOUND", "NOT_FOUND")] * 2
        )
        echoed = [reply.results[0].id, reply.results[1].id, reply.results[3].qb_id]
        assert echoed == [missing_id, "not-a-uuid", "999999999"]
        assert reply.results[4].full_name == "Company / Nowhere"
        assert [r.stream_index for r in reply.results] == [0, 1, 2, 3, 4]
        assert list(reply.ids) == [company["Company"].id]
        assert reply.message == "1 Class found: 1 SYNCED; 4 keys not found"

    def test_the_realm_comes_from_call_metadata(
        self, service: Service, company: dict[str, pb.ClassResult]
    ) -> None:
        parent = company["Company"]
        assert _get(service, service.realm_id, ids=[parent.id]).results[0].status == "SYNCED"
        [other] = _get(service, "4620816365000000000", ids=[parent.id]).results
        assert (other.status, other.id) == ("NOT_FOUND", parent.id)
        assert "4620816365000000000" in other.error_message

    def test_reading_makes_no_qbo_call(
        self, service: Service, company: dict[str, pb.ClassResult]
    ) -> None:
        before = service.sandbox.admin.counters()["requests"]
        _get(service, full_names=["Company", "Company:Software Dept"])
        assert service.sandbox.admin.counters()["requests"] == before

    @pytest.mark.parametrize(
        ("keys", "words"),
        [
            ({}, "names no Class"),
            ({"ids": ["a", "  "]}, "ids[1] is blank"),
            ({"qb_ids": [str(i) for i in range(1001)]}, "at most 1000"),
        ],
    )
    def test_bad_requests_are_invalid_argument(
        self, service: Service, keys: dict[str, list[str]], words: str
    ) -> None:
        request = pb.GetClassesRequest(**keys)
        with pytest.raises(grpc.RpcError) as got:
            service.stub.GetClasses(request, timeout=10)
        with pytest.raises(grpc.RpcError) as watched:
            list(service.stub.WatchClasses(request, timeout=10))
        for error in (got.value, watched.value):
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert words in error.details()

    def test_a_failed_class_reports_its_error(
        self, service_factory: Any, fresh_sandbox: Any
    ) -> None:
        realm = fresh_sandbox.admin.create_realm()
        svc = service_factory(sandbox_=fresh_sandbox, realm_=realm, sync_max_attempts=1)
        fresh_sandbox.admin.set_faults(error_rate=1.0, error_body="html")
        [created] = svc.send([klass("WillFail")])
        assert created.results[0].status == "FAILED"
        [result] = _get(svc, full_names=["WillFail"]).results
        assert (result.status, result.id, result.qb_id) == ("FAILED", created.results[0].id, "")
        assert result.error_code == "ATTEMPTS_EXHAUSTED"
        assert result.error_message == created.results[0].error_message != ""


class TestWatchClasses:
    def test_a_pending_class_is_followed_until_it_syncs(
        self, service_factory: Any, fresh_sandbox: Any
    ) -> None:
        realm = fresh_sandbox.admin.create_realm()
        svc = service_factory(sandbox_=fresh_sandbox, realm_=realm)
        fresh_sandbox.admin.set_faults(outage_seconds=120)
        [created] = svc.send([klass("Paused")], metadata=NO_WAIT)
        assert created.results[0].status == "PENDING"
        watch = svc.stub.WatchClasses(
            pb.GetClassesRequest(full_names=["Paused"], ids=[str(uuid.uuid4())]), timeout=60
        )
        now = [next(watch), next(watch)]
        assert [(r.full_name, r.status) for r in now] == [("", "NOT_FOUND"), ("Paused", "PENDING")]
        assert now[1].id == created.results[0].id
        fresh_sandbox.admin.clear_faults()
        rest = list(watch)  # ends by itself once the Class has settled
        [qbo] = svc.qbo_classes()
        assert [(r.id, r.status, r.qb_id, r.sync_token) for r in rest] == [
            (created.results[0].id, "SYNCED", qbo["Id"], qbo["SyncToken"])
        ]
        assert (rest[0].stream_index, rest[0].request_index) == (1, 0)

    def test_a_class_synced_by_another_replica_is_seen_by_polling(
        self, service_factory: Any, fresh_sandbox: Any
    ) -> None:
        realm = fresh_sandbox.admin.create_realm()
        syncing = service_factory(sandbox_=fresh_sandbox, realm_=realm)
        # Shares the database but syncs nothing: only its poll can see the Class settle.
        reading = service_factory(sandbox_=fresh_sandbox, realm_=realm, sync_enabled=False)
        fresh_sandbox.admin.set_faults(outage_seconds=120)
        [created] = syncing.send([klass("Elsewhere")], metadata=NO_WAIT)
        watch = reading.stub.WatchClasses(
            pb.GetClassesRequest(ids=[created.results[0].id]), timeout=60
        )
        assert next(watch).status == "PENDING"
        fresh_sandbox.admin.clear_faults()
        [settled] = list(watch)
        assert (settled.status, settled.name) == ("SYNCED", "Elsewhere")

    def test_settled_classes_are_sent_once_and_the_stream_ends(
        self, service: Service, company: dict[str, pb.ClassResult]
    ) -> None:
        watch = service.stub.WatchClasses(
            pb.GetClassesRequest(full_names=["Company", "Company / Software Dept"]), timeout=10
        )
        assert [(r.name, r.status) for r in watch] == [
            ("Company", "SYNCED"),
            ("Software Dept", "SYNCED"),
        ]

    def test_the_caller_deadline_ends_a_watch_on_a_class_that_stays_pending(
        self, service_factory: Any, fresh_sandbox: Any
    ) -> None:
        realm = fresh_sandbox.admin.create_realm()
        svc = service_factory(sandbox_=fresh_sandbox, realm_=realm)
        fresh_sandbox.admin.set_faults(outage_seconds=120)
        [created] = svc.send([klass("Stuck")], metadata=NO_WAIT)
        watch = svc.stub.WatchClasses(pb.GetClassesRequest(ids=[created.results[0].id]), timeout=5)
        assert next(watch).status == "PENDING"
        with pytest.raises(grpc.RpcError) as error:
            list(watch)
        assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


class TestRenamedInQbo:
    def test_a_full_name_read_finds_the_class_by_the_name_its_caller_last_sent(
        self, service_factory: Callable[..., Service]
    ) -> None:
        service = service_factory(qbo_cdc_interval_seconds=0.5)
        [reply] = service.send(
            [klass("Company"), klass("Software Dept", "Company / Software Dept")]
        )
        parent, child = reply.results
        admin, realm = service.sandbox.admin, service.realm_id
        admin.rename_class(realm, parent.qb_id, "Holding")
        wait_for(
            lambda: (
                {r.id: r.full_name for r in service.rows()}[child.id] == "Holding:Software Dept"
            ),
            timeout=5.0,
            what="the rename to be read back",
        )

        # The caller still says "Company": both Classes are found, under their names now.
        got = _get(service, full_names=["Company", "Company / Software Dept", "Holding"])
        assert [(r.id, r.full_name, r.status) for r in got.results] == [
            (parent.id, "Holding", "SYNCED"),
            (child.id, "Holding:Software Dept", "SYNCED"),
        ]  # "Holding" named the parent again: answered once

        # A Class holding the name now wins over the one its caller last sent it for.
        created = admin.create_class(realm, "Company")
        wait_for(
            lambda: any(r.qb_id == created["Id"] for r in service.rows()),
            timeout=5.0,
            what="the new Class read",
        )
        [holder] = _get(service, full_names=["Company"]).results
        assert holder.qb_id == created["Id"]
        assert holder.id != parent.id
        [renamed] = _get(service, qb_ids=[parent.qb_id]).results
        assert renamed.full_name == "Holding"


@pytest.mark.parametrize("backend", ["sqlite_database_url", "mysql_database_url"])
def test_reads_work_on_sqlite_and_mariadb(
    backend: str, request: pytest.FixtureRequest, service_factory: Any
) -> None:
    svc: Service = service_factory(db_url=str(request.getfixturevalue(backend)))
    [reply] = svc.send([klass("Dept"), klass("Team", "Dept / Team")])
    team = reply.results[1]
    got = _get(svc, ids=[team.id, "not-a-uuid"], full_names=["Dept:Team", "Dept"])
    assert [(r.name, r.status) for r in got.results] == [
        ("Team", "SYNCED"),
        ("", "NOT_FOUND"),
        ("Dept", "SYNCED"),
    ]
