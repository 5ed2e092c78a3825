"""The Class API and QBO's rules, driven through python-quickbooks over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from quickbooks import QuickBooks
from quickbooks.exceptions import (
    AuthorizationException,
    ObjectNotFoundException,
    QuickbooksException,
    ValidationException,
)
from quickbooks.objects.trackingclass import Class

from classsync.sandbox import RunningSandbox

pytestmark = pytest.mark.integration


def _new(qb: QuickBooks, name: str, parent: Class | None = None, **kwargs: Any) -> Class:
    item = Class()
    item.Name = name
    if parent is not None:
        item.ParentRef = parent.to_ref()
        item.SubClass = True
    return item.save(qb=qb, **kwargs)


def _code(error: pytest.ExceptionInfo[QuickbooksException]) -> int:
    return int(error.value.error_code)


def test_create_read_and_full_update_bump_sync_token(qbo: QuickBooks) -> None:
    created = _new(qbo, "East")
    assert created.SyncToken == "0"
    assert created.FullyQualifiedName == "East"
    assert created.MetaData["CreateTime"]
    read = Class.get(created.Id, qb=qbo)
    read.Name = "East Coast"
    updated = read.save(qb=qbo)
    assert updated.SyncToken == "1"
    assert Class.get(created.Id, qb=qbo).Name == "East Coast"


def test_sparse_update_changes_only_what_is_sent(qbo: QuickBooks) -> None:
    parent = _new(qbo, "Parent")
    child = _new(qbo, "Child", parent)
    sparse = Class()
    sparse.Id, sparse.SyncToken, sparse.sparse = child.Id, child.SyncToken, True
    sparse.Name = "Renamed"
    del sparse.SubClass, sparse.FullyQualifiedName, sparse.Active  # send only Name
    result = sparse.save(qb=qbo)
    assert result.FullyQualifiedName == "Parent:Renamed"
    assert result.ParentRef.value == parent.Id
    assert result.Active is True
    assert result.SyncToken == "1"


def test_full_update_leaving_out_parent_makes_it_top_level(qbo: QuickBooks) -> None:
    parent = _new(qbo, "P")
    child = _new(qbo, "C", parent)
    full = Class()
    full.Id, full.SyncToken, full.Name = child.Id, child.SyncToken, "C"
    result = full.save(qb=qbo)
    assert result.SubClass is False
    assert result.FullyQualifiedName == "C"


def test_fully_qualified_name_follows_a_parent_rename(qbo: QuickBooks) -> None:
    top = _new(qbo, "Company")
    mid = _new(qbo, "Software", top)
    leaf = _new(qbo, "Tools", mid)
    assert leaf.FullyQualifiedName == "Company:Software:Tools"
    renamed = Class.get(top.Id, qb=qbo)
    renamed.Name = "Corp"
    renamed.save(qb=qbo)
    assert Class.get(leaf.Id, qb=qbo).FullyQualifiedName == "Corp:Software:Tools"


def test_duplicate_name_among_siblings_is_6240_but_cousins_may_share(qbo: QuickBooks) -> None:
    a, b = _new(qbo, "A"), _new(qbo, "B")
    _new(qbo, "Ops", a)
    _new(qbo, "Ops", b)  # same name, different parent: allowed
    with pytest.raises(QuickbooksException) as caught:
        _new(qbo, "ops", a)  # case-insensitive by default
    assert _code(caught) == 6240
    with pytest.raises(QuickbooksException) as caught:
        _new(qbo, "A")
    assert _code(caught) == 6240


def test_stale_sync_token_is_5010(qbo: QuickBooks) -> None:
    created = _new(qbo, "Stale")
    first = Class.get(created.Id, qb=qbo)
    second = Class.get(created.Id, qb=qbo)
    first.Name = "Stale 1"
    first.save(qb=qbo)
    second.Name = "Stale 2"
    with pytest.raises(QuickbooksException) as caught:
        second.save(qb=qbo)
    assert _code(caught) == 5010
    assert "Stale Object Error" in caught.value.message


def test_unknown_id_is_610(qbo: QuickBooks) -> None:
    with pytest.raises(ObjectNotFoundException) as caught:
        Class.get("5000000000000999999", qb=qbo)
    assert _code(caught) == 610
    ghost = Class()
    ghost.Id, ghost.SyncToken, ghost.Name = "5000000000000999999", 0, "Ghost"
    with pytest.raises(ObjectNotFoundException):
        ghost.save(qb=qbo)


def test_parent_must_exist_and_be_active(qbo: QuickBooks) -> None:
    missing = Class()
    missing.Id = "5000000000000888888"
    with pytest.raises(ValidationException) as caught:
        _new(qbo, "Orphan", missing)
    assert _code(caught) == 2500

    parent = _new(qbo, "Closed")
    off = Class.get(parent.Id, qb=qbo)
    off.Active = False
    off.save(qb=qbo)
    with pytest.raises(ValidationException) as caught:
        _new(qbo, "Late", parent)
    assert _code(caught) == 2500


def test_sub_classes_stop_at_five_levels(qbo: QuickBooks) -> None:
    level = _new(qbo, "L1")
    for depth in range(2, 6):
        level = _new(qbo, f"L{depth}", level)
    assert level.FullyQualifiedName == "L1:L2:L3:L4:L5"
    with pytest.raises(QuickbooksException) as caught:
        _new(qbo, "L6", level)
    assert _code(caught) == 6000


@pytest.mark.parametrize(
    ("name", "code"),
    [("", 2020), ("x" * 101, 2050), ("Parent:Child", 2040), ("Tab\there", 2040)],
)
def test_name_rules(qbo: QuickBooks, name: str, code: int) -> None:
    with pytest.raises(QuickbooksException) as caught:
        _new(qbo, name)
    assert _code(caught) == code


def test_name_of_exactly_100_characters_is_accepted(qbo: QuickBooks) -> None:
    assert len(_new(qbo, "y" * 100).Name) == 100


def test_deactivate_is_the_delete_and_cascades_to_sub_classes(
    sandbox: RunningSandbox, qbo: QuickBooks
) -> None:
    parent = _new(qbo, "Retired")
    child = _new(qbo, "Retired child", parent)
    off = Class.get(parent.Id, qb=qbo)
    off.Active = False
    assert off.save(qb=qbo).Active is False
    assert Class.get(child.Id, qb=qbo).Active is False  # cascade (option deactivate_parent)
    assert Class.filter(Name="Retired", qb=qbo) == []  # plain queries show active classes only
    assert [c.Name for c in Class.filter(Name="Retired", Active=False, qb=qbo)] == ["Retired"]
    stored = {c["Name"]: c for c in sandbox.admin.classes(qbo.company_id)}
    assert stored["Retired"]["Active"] is False
    assert stored["Retired child"]["SyncToken"] == "1"
    assert not hasattr(Class, "delete")


def test_query_count_paging_and_get_form(sandbox: RunningSandbox, qbo: QuickBooks) -> None:
    for index in range(5):
        _new(qbo, f"Q{index}")
    assert Class.count(qb=qbo) == 5
    page = Class.where("", order_by="Name DESC", start_position=2, max_results=2, qb=qbo)
    assert [c.Name for c in page] == ["Q3", "Q2"]
    response = requests.get(
        f"{sandbox.api_base_url}/company/{qbo.company_id}/query",
        params={"query": "select * from Class where Name = 'Q4'", "minorversion": "75"},
        headers={"Authorization": f"Bearer {qbo.session.access_token}"},
        timeout=5,
    )
    assert response.status_code == 200
    assert response.json()["QueryResponse"]["Class"][0]["Name"] == "Q4"


def test_query_by_last_updated_time(qbo: QuickBooks) -> None:
    created = _new(qbo, "Timed")
    stamp = created.MetaData["LastUpdatedTime"]
    assert [c.Name for c in Class.where(f"MetaData.LastUpdatedTime >= '{stamp}'", qb=qbo)] == [
        "Timed"
    ]
    assert Class.where(f"MetaData.LastUpdatedTime > '{stamp}'", qb=qbo) == []


def test_requestid_replays_the_first_answer_without_a_second_write(
    sandbox: RunningSandbox, qbo: QuickBooks
) -> None:
    first = _new(qbo, "Once", request_id="req-0001")
    again = _new(qbo, "Once", request_id="req-0001")  # would be 6240 if applied twice
    assert again.Id == first.Id
    assert len(Class.filter(Name="Once", qb=qbo)) == 1
    realm = sandbox.admin.counters()["realms"][qbo.company_id]
    assert realm["duplicates_prevented"] == 1
    assert realm["classes_created"] == 1
    with pytest.raises(QuickbooksException) as caught:
        _new(qbo, "Long", request_id="r" * 51)
    assert _code(caught) == 2050


def test_requestid_is_per_realm(sandbox: RunningSandbox, qbo: QuickBooks) -> None:
    from tests.fixtures.sandbox import make_qbo_client

    other = make_qbo_client(sandbox)
    _new(qbo, "Mine", request_id="shared-id")
    assert _new(other, "Theirs", request_id="shared-id").Name == "Theirs"


def test_missing_bearer_gets_qbo_401_body(sandbox: RunningSandbox, qbo: QuickBooks) -> None:
    response = requests.get(
        f"{sandbox.api_base_url}/company/{qbo.company_id}/class/1",
        params={"minorversion": "75"},
        timeout=5,
    )
    assert response.status_code == 401
    error = response.json()["fault"]["error"][0]
    assert error["code"] == "3200"
    assert error["message"] == "message=AuthenticationFailed; errorCode=003200; statusCode=401"
    qbo.session.access_token = "garbage"
    with pytest.raises(AuthorizationException):
        Class.all(qb=qbo)


def test_other_entities_are_refused_with_a_fault(qbo: QuickBooks) -> None:
    with pytest.raises(QuickbooksException) as caught:
        qbo.get(f"{qbo.api_url}/company/{qbo.company_id}/customer/1")
    assert _code(caught) == 500
