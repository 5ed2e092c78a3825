"""CreateClass end to end: real server, real channel, real PostgreSQL, the sandbox over HTTP."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc

from classsync.api.convert import FAILURE_MESSAGE, SUCCESS_MESSAGE
from tests.e2e.conftest import Service, klass
from tests.fixtures.requirements import require_or_skip
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _by_fqn(service: Service) -> dict[str, dict[str, Any]]:
    return {c["FullyQualifiedName"]: c for c in service.qbo_classes()}


def _qbo_post(service: Service, body: dict[str, Any]) -> dict[str, Any]:
    """Change QBO behind classsync's back, the way another QBO user would."""
    realm = service.sandbox.admin.create_realm(service.realm_id)
    response = requests.post(
        f"{service.sandbox.api_base_url}/company/{service.realm_id}/class",
        json=body,
        headers={"Authorization": f"Bearer {realm['access_token']}", "Accept": "application/json"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["Class"]


class TestSeedExample:
    def test_seed_payload_is_stored_synced_and_answered_with_the_node_texts(
        self, service: Service
    ) -> None:
        payload = json.loads((ROOT / "examples" / "classes.json").read_text())
        [reply] = service.send(payload["classes"])
        assert reply.message == SUCCESS_MESSAGE
        assert len(reply.ids) == 2
        rows = {r.name: r for r in service.rows()}
        assert set(rows) == {"Company", "Software Dept"}
        assert [r.status for r in reply.results] == ["SYNCED", "SYNCED"]
        qbo = _by_fqn(service)
        assert set(qbo) == {"Company", "Company:Software Dept"}
        child = qbo["Company:Software Dept"]
        assert child["ParentRef"]["value"] == qbo["Company"]["Id"]
        for row in rows.values():
            assert row.qb_id is not None
            assert row.id in reply.ids
        assert rows["Software Dept"].qb_id == child["Id"]
        assert str(rows["Software Dept"].version_token) == child["SyncToken"]
        assert rows["Software Dept"].full_name == "Company / Software Dept"

    def test_resending_updates_and_never_duplicates(self, service: Service) -> None:
        first = service.send([klass("Ops"), klass("East", "Ops:East")])
        again = service.send([klass("Ops"), klass("East", "Ops / East")])
        assert first[0].message == again[0].message == SUCCESS_MESSAGE
        assert list(first[0].ids) == list(again[0].ids)
        assert len(service.rows()) == 2
        assert sorted(_by_fqn(service)) == ["Ops", "Ops:East"]

    def test_empty_qb_ids_never_collide(self, service: Service) -> None:
        [reply] = service.send([klass("One"), klass("Two"), klass("Three")])
        assert reply.message == SUCCESS_MESSAGE
        assert {r.qb_id for r in service.rows()} == {c["Id"] for c in service.qbo_classes()}


class TestUpdates:
    def test_rename_through_qb_id_updates_the_same_qbo_class(self, service: Service) -> None:
        [created] = service.send([klass("Marketing")])
        qb_id = created.results[0].qb_id
        [renamed] = service.send([klass("Brand", qb_id=qb_id)])
        assert renamed.message == SUCCESS_MESSAGE
        assert renamed.results[0].qb_id == qb_id
        assert renamed.ids == created.ids
        qbo = service.qbo_classes()
        assert [(c["Id"], c["Name"]) for c in qbo] == [(qb_id, "Brand")]
        assert int(renamed.results[0].sync_token) > int(created.results[0].sync_token)

    def test_is_active_false_deactivates_in_qbo(self, service: Service) -> None:
        service.send([klass("Temp")])
        [reply] = service.send([klass("Temp", is_active=False)])
        assert reply.message == SUCCESS_MESSAGE
        [qbo] = service.qbo_classes()
        assert qbo["Active"] is False

    def test_stale_sync_token_is_recovered_by_rereading(self, service: Service) -> None:
        [created] = service.send([klass("Finance")])
        result = created.results[0]
        # Someone edits the class in QBO: our stored SyncToken is now stale (5010 on next write).
        _qbo_post(
            service,
            {
                "Id": result.qb_id,
                "SyncToken": result.sync_token,
                "Name": "Finance",
                "sparse": True,
                "Active": True,
            },
        )
        [reply] = service.send([klass("Finance", is_active=False, version_token=0)])
        assert reply.message == SUCCESS_MESSAGE
        [qbo] = service.qbo_classes()
        assert qbo["Active"] is False
        assert reply.results[0].sync_token == qbo["SyncToken"]

    def test_sparse_update_keeps_fields_the_caller_did_not_send(self, service: Service) -> None:
        service.send([klass("Parent"), klass("Kid", "Parent:Kid")])
        [reply] = service.send([klass("Kid", "Parent:Kid", is_sparse=True, is_active=False)])
        assert reply.message == SUCCESS_MESSAGE
        kid = _by_fqn(service)["Parent:Kid"]
        assert kid["Active"] is False
        assert kid["ParentRef"]["value"] == _by_fqn(service)["Parent"]["Id"]

    def test_existing_qbo_class_with_the_name_is_linked_not_duplicated(
        self, service: Service
    ) -> None:
        existing = _qbo_post(service, {"Name": "Legacy"})
        [reply] = service.send([klass("Legacy")])
        assert reply.message == SUCCESS_MESSAGE
        assert reply.results[0].qb_id == existing["Id"]
        assert len(service.qbo_classes()) == 1


class TestHierarchy:
    def test_missing_ancestors_are_created_first(self, service: Service) -> None:
        [reply] = service.send([klass("Leaf", "Root:Branch:Leaf")])
        assert reply.message == SUCCESS_MESSAGE
        qbo = _by_fqn(service)
        assert set(qbo) == {"Root", "Root:Branch", "Root:Branch:Leaf"}
        assert qbo["Root:Branch:Leaf"]["ParentRef"]["value"] == qbo["Root:Branch"]["Id"]
        assert len(service.rows()) == 3

    def test_child_listed_before_its_parent_in_one_request(self, service: Service) -> None:
        [reply] = service.send([klass("Child", "Top:Child"), klass("Top", domain_source="X")])
        assert reply.message == SUCCESS_MESSAGE
        assert set(_by_fqn(service)) == {"Top", "Top:Child"}
        rows = {r.name: r for r in service.rows()}
        assert rows["Top"].domain_source == "X"


class TestBadInput:
    def test_bad_classes_get_specific_errors_and_the_good_ones_still_sync(
        self, service: Service
    ) -> None:
        [reply] = service.send(
            [
                klass("Good"),
                klass(""),
                klass("x" * 101),
                klass("A:B", full_name=""),
                klass("Mismatch", "Top:Other"),
                klass("Orphan", is_sub_class=True),
                klass("F", "A:B:C:D:E:F"),
                klass("Neg", version_token=-5),
                klass("Ghost", qb_id="999999999"),
                klass("Also Good"),
            ]
        )
        assert reply.message == FAILURE_MESSAGE
        codes = [r.error_code for r in reply.results]
        assert codes == [
            "",
            "NAME_EMPTY",
            "NAME_TOO_LONG",
            "NAME_HAS_COLON",
            "FULL_NAME_MISMATCH",
            "SUBCLASS_WITHOUT_PARENT",
            "TOO_DEEP",
            "NEGATIVE_VERSION_TOKEN",
            "UNKNOWN_QB_ID",
            "",
        ]
        assert [r.status for r in reply.results].count("SYNCED") == 2
        assert len(reply.ids) == 2
        assert sorted(c["Name"] for c in service.qbo_classes()) == ["Also Good", "Good"]
        assert sorted(r.name for r in service.rows()) == ["Also Good", "Good"]

    def test_empty_request_is_reported_and_the_stream_goes_on(self, service: Service) -> None:
        replies = service.send([], [klass("After")], per_request=True)
        assert replies[0].message == FAILURE_MESSAGE
        assert replies[0].results[0].error_code == "EMPTY_REQUEST"
        assert replies[1].message == SUCCESS_MESSAGE

    def test_request_over_the_class_limit_is_resource_exhausted(self, service_factory: Any) -> None:
        small = service_factory(max_classes_per_request=3)
        with pytest.raises(grpc.RpcError) as error:
            small.send([klass("Kept")], [klass(f"C{i}") for i in range(4)])
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "at most 3" in error.value.details()
        # The ClassRequest before the oversized one was stored and still reaches QBO.
        assert [r.name for r in small.rows()] == ["Kept"]

    def test_message_over_the_byte_limit_is_resource_exhausted(self, service_factory: Any) -> None:
        small = service_factory(max_message_bytes=2048)
        with pytest.raises(grpc.RpcError) as error:
            small.send([klass(f"Big{i}", domain_source="d" * 900) for i in range(5)])
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


class TestResponseModes:
    def test_per_request_mode_answers_each_request_in_order(self, service: Service) -> None:
        replies = service.send([klass("R1")], [klass("R2"), klass("R3")], per_request=True)
        assert [len(r.ids) for r in replies] == [1, 2]
        assert [r.message for r in replies] == [SUCCESS_MESSAGE, SUCCESS_MESSAGE]
        assert [r.results[0].name for r in replies] == ["R1", "R2"]

    def test_default_mode_answers_once_for_the_whole_stream(self, service: Service) -> None:
        replies = service.send([klass("S1")], [klass("S2")])
        assert len(replies) == 1
        assert len(replies[0].ids) == 2
        assert [r.stream_index for r in replies[0].results] == [0, 1]


class TestQboDown:
    def test_outage_answers_pending_then_syncs_when_qbo_returns(
        self, service_factory: Any, fresh_sandbox: Any
    ) -> None:
        realm = fresh_sandbox.admin.create_realm()
        svc = service_factory(sandbox_=fresh_sandbox, realm_=realm, response_wait_seconds=1.5)
        fresh_sandbox.admin.set_faults(outage_seconds=60)
        [reply] = svc.send([klass("Offline")])
        assert reply.message == FAILURE_MESSAGE
        assert reply.results[0].status == "PENDING"
        assert reply.results[0].id
        assert [r.name for r in svc.rows()] == ["Offline"]
        fresh_sandbox.admin.clear_faults()
        # Resending the same Class waits for its (already queued) sync and reports it.
        [again] = svc.send([klass("Offline"), klass("Online")])
        assert again.message == SUCCESS_MESSAGE
        assert sorted(c["Name"] for c in svc.qbo_classes()) == ["Offline", "Online"]
        assert len(svc.rows()) == 2


class TestOperations:
    def test_health_and_reflection_answer(self, service: Service) -> None:
        health = health_pb2_grpc.HealthStub(service.channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service="ClassService"), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

        stub = reflection_pb2_grpc.ServerReflectionStub(service.channel)
        responses = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = {s.name for r in responses for s in r.list_services_response.service}
        assert "ClassService" in names

    def test_cancelled_call_still_syncs_what_was_committed(
        self, service_factory: Any, fresh_sandbox: Any
    ) -> None:
        realm = fresh_sandbox.admin.create_realm()
        svc = service_factory(sandbox_=fresh_sandbox, realm_=realm)
        fresh_sandbox.admin.set_faults(latency_ms=300)
        from classsync.api._generated import class_service_pb2 as pb

        call = svc.stub.CreateClass(
            iter([pb.ClassRequest(classes=[pb.Class(**klass("Cancelled"))])]), timeout=30
        )
        wait_for(lambda: bool(svc.rows()), timeout=10, what="the Class to be stored")
        call.cancel()
        fresh_sandbox.admin.clear_faults()
        wait_for(
            lambda: [c["Name"] for c in svc.qbo_classes()] == ["Cancelled"],
            timeout=15,
            what="the cancelled call's Class in QBO",
        )

    def test_deadline_shorter_than_sync_answers_pending_in_time(
        self, service_factory: Any, fresh_sandbox: Any
    ) -> None:
        realm = fresh_sandbox.admin.create_realm()
        svc = service_factory(sandbox_=fresh_sandbox, realm_=realm)
        fresh_sandbox.admin.set_faults(latency_ms=3000)
        [reply] = svc.send([klass("Slow")], timeout=1.5)
        assert reply.results[0].status == "PENDING"
        assert reply.message == FAILURE_MESSAGE


def test_a_caller_built_from_the_unchanged_seed_proto_works(
    service: Service, tmp_path: Path
) -> None:
    if shutil.which("node") is None:
        require_or_skip("node", "install Node.js and run `make node-deps`")
    seed = ROOT / "tests" / "node" / "seed" / "class_service.proto"
    assert "package" not in seed.read_text()
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps([json.loads((ROOT / "examples" / "classes.json").read_text())]))
    done = subprocess.run(
        [
            "node",
            str(ROOT / "tests" / "node" / "seed_client.js"),
            f"127.0.0.1:{service.app.port}",
            str(payload),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    [line] = done.stdout.strip().splitlines()
    reply = json.loads(line)
    assert reply["message"] == SUCCESS_MESSAGE
    assert len(reply["ids"]) == 2
    assert set(reply) == {"ids", "message"}  # the seed proto does not know `results`


@pytest.mark.parametrize("backend", ["sqlite_database_url", "mysql_database_url"])
def test_the_same_service_runs_on_sqlite_and_mariadb(
    backend: str, request: pytest.FixtureRequest, service_factory: Any
) -> None:
    svc: Service = service_factory(db_url=str(request.getfixturevalue(backend)))
    [reply] = svc.send([klass("Dept"), klass("Team", "Dept / Team")])
    assert reply.message == SUCCESS_MESSAGE
    [again] = svc.send([klass("Team", "Dept:Team", is_active=False)])
    assert again.message == SUCCESS_MESSAGE
    assert len(svc.rows()) == 2
    qbo = _by_fqn(svc)
    assert set(qbo) == {"Dept", "Dept:Team"}
    assert qbo["Dept:Team"]["Active"] is False
