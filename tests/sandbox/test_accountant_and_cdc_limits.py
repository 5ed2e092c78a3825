"""The admin API playing the accountant (edits made in QBO itself) and CDC's 30-day/1000 limits."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from quickbooks import QuickBooks
from quickbooks.cdc import change_data_capture
from quickbooks.exceptions import QuickbooksException
from quickbooks.objects.trackingclass import Class

from classsync.sandbox import RunningSandbox, SandboxAdminError
from tests.fixtures.sandbox import make_qbo_client

pytestmark = pytest.mark.integration


def _utc_naive(moment: datetime) -> datetime:
    # python-quickbooks sends changedSince without an offset; the sandbox reads it as UTC.
    return moment.astimezone(UTC).replace(tzinfo=None)


def _names(sandbox: RunningSandbox, realm_id: str) -> dict[str, str]:
    return {c["Id"]: c["FullyQualifiedName"] for c in sandbox.admin.classes(realm_id)}


def test_reparent_recomputes_full_names_of_the_class_and_its_descendants(
    sandbox: RunningSandbox, sandbox_realm: dict[str, Any], qbo: QuickBooks
) -> None:
    realm_id, admin = sandbox_realm["realm_id"], sandbox.admin
    east = admin.create_class(realm_id, "East")
    west = admin.create_class(realm_id, "West")
    sales = admin.create_class(realm_id, "Sales", parent_id=east["Id"])
    team = admin.create_class(realm_id, "Team", parent_id=sales["Id"])
    assert team["FullyQualifiedName"] == "East:Sales:Team"

    moved = admin.move_class(realm_id, sales["Id"], west["Id"])
    assert moved["FullyQualifiedName"] == "West:Sales"
    assert moved["ParentRef"] == {"value": west["Id"]}
    assert moved["SyncToken"] == "1"
    assert moved["MetaData"]["LastUpdatedTime"] >= sales["MetaData"]["LastUpdatedTime"]
    assert _names(sandbox, realm_id)[team["Id"]] == "West:Sales:Team"
    # The API client sees the accountant's edit, and its own stale SyncToken is refused.
    assert Class.get(team["Id"], qb=qbo).FullyQualifiedName == "West:Sales:Team"

    top = admin.move_class(realm_id, sales["Id"], None)
    assert (top["FullyQualifiedName"], top["SubClass"], top["SyncToken"]) == ("Sales", False, "2")
    assert "ParentRef" not in top
    assert _names(sandbox, realm_id)[team["Id"]] == "Sales:Team"

    admin.rename_class(realm_id, sales["Id"], "Revenue")
    assert admin.get_class(realm_id, team["Id"])["FullyQualifiedName"] == "Revenue:Team"
    assert admin.get_class(realm_id, sales["Id"])["SyncToken"] == "3"
    assert admin.get_class(realm_id, team["Id"])["SyncToken"] == "0"  # default: not touched


def test_rename_touches_sub_classes_option_reports_them_in_cdc(
    sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    running = sandbox_factory(rename_touches_sub_classes=True)
    realm = running.admin.create_realm()
    realm_id, admin = realm["realm_id"], running.admin
    top = admin.create_class(realm_id, "Top")
    middle = admin.create_class(realm_id, "Middle", parent_id=top["Id"])
    leaf = admin.create_class(realm_id, "Leaf", parent_id=middle["Id"])
    since = _utc_naive(datetime.now(UTC))
    admin.rename_class(realm_id, top["Id"], "Summit")
    changed = change_data_capture([Class], since, qb=make_qbo_client(running, realm))
    assert {c.Id: (c.FullyQualifiedName, c.SyncToken) for c in changed.Class} == {
        top["Id"]: ("Summit", "1"),
        middle["Id"]: ("Summit:Middle", "1"),
        leaf["Id"]: ("Summit:Middle:Leaf", "1"),
    }
    admin.set_class_active(realm_id, leaf["Id"], False)  # not a rename: the parent is untouched
    assert admin.get_class(realm_id, middle["Id"])["SyncToken"] == "1"


def test_accountant_edits_follow_qbo_rules_and_make_api_tokens_stale(
    sandbox: RunningSandbox, sandbox_realm: dict[str, Any], qbo: QuickBooks
) -> None:
    realm_id, admin = sandbox_realm["realm_id"], sandbox.admin
    parent = Class()
    parent.Name = "Parent"
    parent = parent.save(qb=qbo)
    child = admin.create_class(realm_id, "Child", parent_id=parent.Id)

    off = admin.set_class_active(realm_id, parent.Id, False)
    assert (off["Active"], off["SyncToken"]) == (False, "1")
    assert admin.get_class(realm_id, child["Id"])["Active"] is False  # cascaded, as via the API
    parent.Name = "Parent from the API"
    with pytest.raises(QuickbooksException) as stale:
        parent.save(qb=qbo)
    assert stale.value.error_code == 5010
    assert admin.set_class_active(realm_id, parent.Id, True)["Active"] is True

    with pytest.raises(SandboxAdminError, match="6240"):
        admin.create_class(realm_id, "Parent")
    with pytest.raises(SandboxAdminError, match="2040"):
        admin.rename_class(realm_id, child["Id"], "a:b")
    with pytest.raises(SandboxAdminError, match="not editable"):
        admin.change_class(realm_id, child["Id"], SyncToken="0")
    with pytest.raises(SandboxAdminError, match="404"):
        admin.rename_class(realm_id, "5999", "Nobody")
    counters = sandbox.admin.counters()["realms"][realm_id]
    assert counters["admin_changes"] == 3
    assert counters["classes_created"] == 1  # API calls only


def test_cdc_refuses_a_changed_since_older_than_the_lookback(
    sandbox_factory: Callable[..., RunningSandbox], qbo: QuickBooks
) -> None:
    now = datetime.now(UTC)
    assert not hasattr(
        change_data_capture([Class], _utc_naive(now - timedelta(days=29)), qb=qbo), "Class"
    )
    with pytest.raises(QuickbooksException) as refused:
        change_data_capture([Class], _utc_naive(now - timedelta(days=31)), qb=qbo)
    assert refused.value.error_code == 2010
    assert "30 days" in refused.value.detail

    short = sandbox_factory(cdc_lookback_seconds=60)
    qb = make_qbo_client(short)
    with pytest.raises(QuickbooksException):
        change_data_capture([Class], _utc_naive(now - timedelta(seconds=120)), qb=qb)
    assert not hasattr(
        change_data_capture([Class], _utc_naive(now - timedelta(seconds=30)), qb=qb), "Class"
    )


def _state_file(path: Path, realm_id: str, updated: list[float]) -> Path:
    """A saved sandbox state whose classes were last changed at the given epoch seconds."""
    base = 5_000_000_000_000_000_001
    classes = [
        {
            "id": base + index,
            "name": f"C{index}",
            "parent_id": None,
            "active": index % 2 == 0,
            "sync_token": 1,
            "created": stamp - 100,
            "updated": stamp,
        }
        for index, stamp in enumerate(updated)
    ]
    realm = {"realm_id": realm_id, "next_id": base + len(updated), "classes": classes}
    path.write_text(json.dumps({"version": 1, "realms": [realm], "tokens": {}}))
    return path


def test_cdc_answers_the_oldest_changes_first_up_to_the_maximum(
    sandbox_factory: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    now = time.time()
    stamps = [now - 50, now - 40, now - 30, now - 20, now - 10]
    realm_id = "9130350000000000777"
    running = sandbox_factory(
        cdc_max_objects=2, state_file=str(_state_file(tmp_path / "s.json", realm_id, stamps))
    )
    qb = make_qbo_client(running, realm_id)

    since = _utc_naive(datetime.fromtimestamp(now - 60, UTC))
    first = change_data_capture([Class], since, qb=qb)
    assert [c.Name for c in first.Class] == ["C0", "C1"]  # inactive ones included
    answered = datetime.fromisoformat(first.time)
    assert abs(answered.timestamp() - time.time()) < 5  # the sandbox's now, even when cut

    # A poller that moves changedSince to the newest LastUpdatedTime it got sees every change.
    seen: list[str] = []
    while True:
        answer = change_data_capture([Class], since, qb=qb)
        batch = list(getattr(answer, "Class", []))
        seen += [c.Name for c in batch if c.Name not in seen]
        if len(batch) < 2:
            break
        newest = max(c.MetaData["LastUpdatedTime"] for c in batch)
        since = _utc_naive(datetime.fromisoformat(newest))
    assert seen == ["C0", "C1", "C2", "C3", "C4"]

    running.admin.update_config(cdc_max_objects=0)  # 0 turns the limit off
    everything = change_data_capture(
        [Class], _utc_naive(datetime.fromtimestamp(now - 60, UTC)), qb=qb
    )
    assert len(everything.Class) == 5
