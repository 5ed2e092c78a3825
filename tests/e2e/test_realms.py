"""Many QBO companies in one server: the realm per call, refusals, the realm commands."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from classsync.api._generated import class_service_pb2 as pb
from classsync.api.convert import SUCCESS_MESSAGE
from classsync.api.realm import REALM_KEY
from classsync.realms import add_realm
from tests.e2e.conftest import Service, klass
from tests.e2e.processes import run_cli, server_env

pytestmark = pytest.mark.e2e


def _in(realm_id: str) -> list[tuple[str, str]]:
    return [(REALM_KEY, realm_id)]


def _connect(service: Service, realm: dict[str, Any]) -> str:
    """Connect ``realm`` (a sandbox realm with tokens) to the running service's database."""
    add_realm(service.settings, realm["realm_id"], realm["refresh_token"])
    return str(realm["realm_id"])


def _names(service: Service, realm_id: str) -> list[str]:
    return sorted(c["FullyQualifiedName"] for c in service.sandbox.admin.classes(realm_id))


def test_each_call_reaches_the_company_its_metadata_names(service: Service) -> None:
    second = _connect(service, service.sandbox.admin.create_realm())
    third = _connect(service, service.sandbox.admin.create_realm())
    [default_reply] = service.send([klass("Default Co")])
    [second_reply] = service.send([klass("Second Co")], metadata=_in(second))
    [third_reply] = service.send(
        [klass("Third Co"), klass("Dept", "Third Co:Dept")], metadata=_in(third)
    )
    for reply in (default_reply, second_reply, third_reply):
        assert reply.message == SUCCESS_MESSAGE
    # Each company holds its own Classes and nothing else.
    assert _names(service, service.realm_id) == ["Default Co"]
    assert _names(service, second) == ["Second Co"]
    assert _names(service, third) == ["Third Co", "Third Co:Dept"]
    realms = {job.class_id: job.realm_id for job in service.jobs()}
    assert realms[second_reply.results[0].id] == second
    assert {realms[r.id] for r in third_reply.results} == {third}


def test_naming_the_default_realm_is_the_same_as_naming_none(service: Service) -> None:
    [reply] = service.send([klass("Named Default")], metadata=_in(service.realm_id))
    assert reply.message == SUCCESS_MESSAGE
    assert _names(service, service.realm_id) == ["Named Default"]


@pytest.mark.parametrize("how", ["unknown", "disconnected"])
def test_a_realm_that_is_not_connected_is_refused_before_anything_is_stored(
    service: Service, how: str
) -> None:
    if how == "unknown":
        realm_id = "4620816365000000000"
    else:
        realm = service.sandbox.admin.create_realm()
        realm_id = _connect(service, realm)
        service.sandbox.admin.revoke_tokens(realm_id)  # QBO refuses it from now on
        service.sandbox.admin.expire_access_tokens(realm_id)
        with service.app.storage.token_store.locked(realm_id) as locked:
            locked.mark_disconnected("QBO refused the refresh token (invalid_grant)")
    with pytest.raises(grpc.RpcError) as refused:
        service.send([klass("Nowhere")], metadata=_in(realm_id))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = refused.value.details() or ""
    assert realm_id in details
    assert f"classsync realm add {realm_id}" in details
    assert "classsync connect --realm" in details
    assert service.rows() == []
    assert service.jobs() == []


def test_realm_commands_add_list_and_remove(database_url: str, service: Service) -> None:
    realm = service.sandbox.admin.create_realm()
    realm_id = realm["realm_id"]
    env = server_env(
        database_url, service.sandbox, {"realm_id": service.realm_id, "refresh_token": "unused"}
    )
    added = run_cli(env, "realm", "add", realm_id, "--refresh-token", realm["refresh_token"])
    assert added.returncode == 0, added.stderr
    # The token given was used once: QBO rotated it, so it no longer works anywhere.
    assert realm["refresh_token"] not in added.stdout + added.stderr
    [reply] = service.send([klass("Via CLI")], metadata=_in(realm_id))
    assert reply.message == SUCCESS_MESSAGE
    listed = run_cli(env, "realm", "list")
    assert listed.returncode == 0, listed.stderr
    assert realm["refresh_token"] not in listed.stdout
    by_id = {r["realm_id"]: r for r in json.loads(listed.stdout)}
    assert by_id[realm_id]["status"] == "CONNECTED"
    assert by_id[realm_id]["last_refresh"] is not None
    assert by_id[realm_id]["jobs"]["SYNCED"] == 1
    assert by_id[realm_id]["backlog"] == 0
    assert by_id[service.realm_id]["default"] is True
    status = json.loads(run_cli(env, "status").stdout)
    assert {r["realm_id"] for r in status["realms"]} >= {realm_id, service.realm_id}

    removed = run_cli(env, "realm", "remove", realm_id)
    assert removed.returncode == 0, removed.stderr
    assert "token revoked" in removed.stdout
    after = {r["realm_id"]: r for r in json.loads(run_cli(env, "realm", "list").stdout)}
    assert after[realm_id]["status"] == "DISCONNECTED"
    assert after[realm_id]["jobs"]["SYNCED"] == 1  # the rows stay
    assert len(service.rows()) == 1
    with pytest.raises(grpc.RpcError) as refused:
        service.send([klass("After Removal")], metadata=_in(realm_id))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert len(service.rows()) == 1
    # Revoked at QBO: the token the server still had in memory no longer refreshes there.
    with pytest.raises(Exception, match="invalid_grant"):
        add_realm(service.settings, realm_id, "sbx-rt-not-a-token")


def test_realm_add_with_a_refused_token_fails_and_leaves_the_realm_disconnected(
    database_url: str, service: Service
) -> None:
    realm = service.sandbox.admin.create_realm()
    service.sandbox.admin.revoke_tokens(realm["realm_id"])
    env = server_env(
        database_url, service.sandbox, {"realm_id": service.realm_id, "refresh_token": "x"}
    )
    added = run_cli(
        env, "realm", "add", realm["realm_id"], "--refresh-token", realm["refresh_token"]
    )
    assert added.returncode == 1
    assert "invalid_grant" in added.stderr
    assert realm["refresh_token"] not in added.stderr
    listed = {r["realm_id"]: r for r in json.loads(run_cli(env, "realm", "list").stdout)}
    assert listed[realm["realm_id"]]["status"] == "DISCONNECTED"


def test_the_same_name_and_the_same_qbo_id_in_two_realms_are_two_rows(service: Service) -> None:
    realms = [service.realm_id]
    realms += [_connect(service, service.sandbox.admin.create_realm()) for _ in range(2)]
    replies = {}
    for realm_id in realms:
        [replies[realm_id]] = service.send(
            [klass("Shared"), klass("Dept", "Shared:Dept")], metadata=_in(realm_id)
        )
        assert replies[realm_id].message == SUCCESS_MESSAGE
    rows = service.rows()
    assert len(rows) == 6
    assert {(r.realm_id, r.full_name_key) for r in rows} == {
        (realm_id, key) for realm_id in realms for key in ("shared", "shared:dept")
    }
    # Each company numbers its own classes: the same QBO Ids, stored once per realm.
    qb_ids = {realm_id: [r.qb_id for r in replies[realm_id].results] for realm_id in realms}
    assert len({tuple(ids) for ids in qb_ids.values()}) == 1
    for realm_id in realms:
        assert _names(service, realm_id) == ["Shared", "Shared:Dept"]
        by_name = {
            c["FullyQualifiedName"]: c["Id"] for c in service.sandbox.admin.classes(realm_id)
        }
        assert [by_name["Shared"], by_name["Shared:Dept"]] == qb_ids[realm_id]
    # Reads and resends stay in their realm: a resend updates that realm's row, no other.
    [again] = service.send([klass("Shared", is_active=False)], metadata=_in(realms[1]))
    assert again.results[0].id == replies[realms[1]].results[0].id
    for realm_id in realms:
        [found] = service.stub.GetClasses(
            pb.GetClassesRequest(qb_ids=[qb_ids[realm_id][0]]), metadata=_in(realm_id), timeout=10
        ).results
        assert found.id == replies[realm_id].results[0].id
    active = {c["Name"]: c["Active"] for c in service.sandbox.admin.classes(realms[1])}
    assert active["Shared"] is False
    for realm_id in (realms[0], realms[2]):
        assert all(c["Active"] for c in service.sandbox.admin.classes(realm_id))
