"""The conflict rule (sync.conflicts) and its application (sync.remote_changes) with fakes."""

from __future__ import annotations

from datetime import datetime

import pytest
from structlog.testing import capture_logs

from classsync.domain import LocalClass, SideValues
from classsync.sync.conflicts import ConflictCounter, decide, is_news
from classsync.sync.remote_changes import RemoteChangeApplier
from tests.fakes.remote import FakeRemoteUow, RemoteWorld, qbo_class

pytestmark = pytest.mark.unit

REALM = "realm-1"
NOW = datetime(2026, 12, 1, 12, 0, 0)
BASE = SideValues("Team", "10", True)


def local(
    *,
    name: str = "Team",
    parent: str | None = "10",
    active: bool = True,
    base: SideValues | None = BASE,
    status: str | None = "SYNCED",
    token: int = 3,
    key: str = "Dept:Team",
) -> LocalClass:
    return LocalClass(
        class_id="row-1",
        qb_id="20",
        key=key,
        current=SideValues(name, parent, active),
        base=base,
        version_token=token,
        job_status=status,
    )


def test_a_synced_row_takes_every_field_qbo_changed() -> None:
    remote = qbo_class("20", "Squad", 4, parent="11", fqn="Other:Squad", active=False)
    change, conflicts = decide(REALM, local(), remote)
    assert change.values == SideValues("Squad", "11", False)
    assert change.key == "Other:Squad"
    assert change.settled
    assert change.edited_in_qbo
    assert conflicts == []


def test_qbo_wins_its_fields_and_the_caller_keeps_the_others() -> None:
    # The caller deactivated it (not synced yet); the accountant renamed it.
    pending = local(active=False, status="PENDING")
    remote = qbo_class("20", "Squad", 4, parent="10", fqn="Dept:Squad")
    change, conflicts = decide(REALM, pending, remote)
    assert change.values == SideValues("Squad", "10", False)
    assert change.key == "Dept:Squad"
    assert not change.settled  # the deactivation is still to be pushed
    assert conflicts == []


def test_a_field_both_sides_changed_goes_to_qbo_and_is_reported() -> None:
    pending = local(name="Crew", key="Dept:Crew", status="PENDING")
    remote = qbo_class("20", "Squad", 4, parent="10", fqn="Dept:Squad")
    change, conflicts = decide(REALM, pending, remote)
    assert change.values.name == "Squad"
    assert change.key == "Dept:Squad"
    assert change.settled
    [conflict] = conflicts
    assert (conflict.field, conflict.caller_value, conflict.qbo_value) == ("name", "Crew", "Squad")


def test_the_same_change_on_both_sides_is_no_conflict() -> None:
    pending = local(active=False, status="PENDING")
    remote = qbo_class("20", "Team", 4, parent="10", fqn="Dept:Team", active=False)
    change, conflicts = decide(REALM, pending, remote)
    assert conflicts == []
    assert change.settled


def test_the_callers_name_under_the_parent_qbo_chose() -> None:
    pending = local(name="Crew", key="Dept:Crew", status="PENDING")
    remote = qbo_class("20", "Team", 4, parent="11", fqn="Other:Team")
    change, conflicts = decide(REALM, pending, remote)
    assert change.values == SideValues("Crew", "11", True)
    assert change.key == "Other:Crew"
    assert conflicts == []


def test_without_a_base_every_difference_counts_as_changed_in_qbo() -> None:
    pending = local(name="Crew", key="Dept:Crew", base=None, status="PENDING")
    remote = qbo_class("20", "Squad", 4, parent="10", fqn="Dept:Squad")
    change, conflicts = decide(REALM, pending, remote)
    assert change.values.name == "Squad"
    assert [c.field for c in conflicts] == ["name"]


def test_a_class_created_in_qbo_is_a_new_settled_row() -> None:
    change, conflicts = decide(REALM, None, qbo_class("30", "New", 0))
    assert change.local is None
    assert change.settled
    assert conflicts == []


def test_a_sync_token_already_held_is_no_news() -> None:
    assert not is_news(local(token=4), qbo_class("20", "Team", 4))
    assert not is_news(local(token=5), qbo_class("20", "Team", 4))
    assert is_news(local(token=3), qbo_class("20", "Team", 4))
    assert is_news(None, qbo_class("20", "Team", 0))


def test_the_applier_logs_and_counts_each_superseded_caller_value() -> None:
    world = RemoteWorld(
        locals_by_qb_id={"20": local(name="Crew", key="Dept:Crew", status="PENDING")}
    )
    counter = ConflictCounter()
    applier = RemoteChangeApplier(lambda: FakeRemoteUow(world), counter, clock=lambda: NOW)
    with capture_logs() as logs:
        applied = applier.apply(REALM, [qbo_class("20", "Squad", 4, parent="10", fqn="Dept:Squad")])
    assert applied == 1
    assert counter.counts() == {(REALM, "qbo", "name"): 1}
    [event] = [e for e in logs if e["event"] == "conflict_caller_change_superseded"]
    assert (event["caller_value"], event["qbo_value"]) == ("Crew", "Squad")


def test_the_applier_skips_what_the_row_already_holds_and_keeps_the_newest_token() -> None:
    world = RemoteWorld(locals_by_qb_id={"20": local(token=4)})
    applier = RemoteChangeApplier(
        lambda: FakeRemoteUow(world), ConflictCounter(), clock=lambda: NOW
    )
    same = qbo_class("20", "Team", 4, parent="10", fqn="Dept:Team")
    assert applier.apply(REALM, [same, same]) == 0
    newer = [qbo_class("30", "A", 1), qbo_class("30", "B", 2), qbo_class("30", "A", 1)]
    assert applier.apply(REALM, newer) == 1
    assert [c.remote.name for c in world.applied] == ["B"]


def test_a_qbo_name_with_a_slash_is_one_level() -> None:
    change, _ = decide(REALM, None, qbo_class("31", "R / D", 0))
    assert change.key == "R / D"
    nested, _ = decide(REALM, None, qbo_class("32", "Lab", 0, parent="31", fqn="R / D:Lab"))
    assert nested.key == "R / D:Lab"


def test_a_row_not_synced_yet_is_linked_and_keeps_the_callers_values() -> None:
    pending = LocalClass(
        class_id="row-2",
        qb_id=None,
        key="Sales",
        current=SideValues("Sales", None, True),
        base=None,
        version_token=0,
        job_status="PENDING",
    )
    change, conflicts = decide(REALM, pending, qbo_class("40", "SALES", 0))
    assert change.values == SideValues("Sales", None, True)
    assert change.key == "Sales"
    assert not change.settled  # the caller's casing is still to be pushed
    assert conflicts == []
