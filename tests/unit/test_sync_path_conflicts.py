"""The conflict rule where the engine writes (sync.job_sync) and no-op resends (domain.plan_upsert)."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from classsync.domain import (
    ClassInput,
    KnownRows,
    QboClass,
    SideValues,
    StoredRow,
    ValidClass,
    plan_upsert,
    validate,
)
from classsync.sync.conflicts import ConflictCounter
from classsync.sync.job_sync import JobSync
from classsync.sync.limiter import RateLimiter
from classsync.sync.ports import ClaimedJob, ClassSnapshot
from classsync.sync.retry_policy import Retry, RetryPolicy
from tests.fakes import FakeClock, FakeQboGateway

pytestmark = pytest.mark.unit

REALM = "realm-1"


class RecordingOutcomes:
    """Stands in for sync.outcomes.Outcomes: records what JobSync decided."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def synced(self, job: ClaimedJob, lease_owner: str, result: QboClass) -> None:
        self.calls.append(("synced", result))

    def decided(self, job: ClaimedJob, lease_owner: str, decision: Any) -> None:
        self.calls.append(("decided", decision))

    def errored(self, job: ClaimedJob, lease_owner: str, error: BaseException) -> None:
        self.calls.append(("errored", error))


def claimed(qbo: QboClass, *, name: str, active: bool, base: SideValues | None) -> ClaimedJob:
    snapshot = ClassSnapshot(
        class_id="row-1",
        qb_id=qbo.id,
        name=name,
        key=name,
        is_active=active,
        is_sparse=False,
        version_token=int(qbo.sync_token),
        base=base,
    )
    return ClaimedJob("row-1", REALM, 1, 0, 1, False, snapshot)


def rig() -> tuple[FakeQboGateway, RecordingOutcomes, list[QboClass], ConflictCounter, JobSync]:
    qbo, outcomes, merged, counter = FakeQboGateway(), RecordingOutcomes(), [], ConflictCounter()
    sync = JobSync(
        lambda: None,  # type: ignore[arg-type, return-value]  (no parent look-up at top level)
        qbo,
        RateLimiter(),
        RetryPolicy(),
        outcomes,  # type: ignore[arg-type]
        FakeClock(),
        remote_changed=lambda realm_id, current: merged.append(current) or 1,
        conflicts=counter,
    )
    return qbo, outcomes, merged, counter, sync


def test_a_write_equal_to_qbos_last_synced_state_is_not_sent() -> None:
    qbo, outcomes, _, _, sync = rig()
    held = qbo.seed(REALM, "Ops")
    sync.process(claimed(held, name="Ops", active=True, base=SideValues("Ops", None, True)), "w")
    assert qbo.operations() == []
    assert outcomes.calls[0][0] == "synced"


def test_a_qbo_edit_found_on_a_stale_token_is_merged_first_then_synced_again() -> None:
    qbo, outcomes, merged, _, sync = rig()
    held = qbo.seed(REALM, "Ops")
    job = claimed(held, name="Ops", active=False, base=SideValues("Ops", None, True))
    qbo.edit(REALM, held.id, name="Operations")  # the accountant renames it meanwhile
    sync.process(job, "w")
    assert qbo.operations() == ["update", "read"]  # nothing written over the rename
    assert [c.name for c in merged] == ["Operations"]
    [(kind, decision)] = outcomes.calls
    assert kind == "decided"
    assert isinstance(decision, Retry)
    assert not decision.counts_as_attempt
    assert qbo.classes[REALM][held.id].name == "Operations"


def test_a_stale_token_without_a_qbo_field_change_writes_the_callers_version() -> None:
    qbo, outcomes, merged, counter, sync = rig()
    held = qbo.seed(REALM, "Ops")
    job = claimed(held, name="Ops", active=False, base=SideValues("Ops", None, True))
    qbo.edit(REALM, held.id)  # only the SyncToken moves
    sync.process(job, "w")
    assert qbo.operations() == ["update", "read", "update"]
    assert qbo.classes[REALM][held.id].active is False
    assert [kind for kind, _ in outcomes.calls] == ["synced"]
    assert merged == []
    assert counter.total() == 0


def test_without_a_base_an_overwrite_of_a_qbo_edit_is_logged_and_counted() -> None:
    qbo, _, merged, counter, sync = rig()
    held = qbo.seed(REALM, "Ops")
    job = claimed(held, name="Ops", active=True, base=None)
    qbo.edit(REALM, held.id, name="Operations")
    with capture_logs() as logs:
        sync.process(job, "w")
    assert qbo.classes[REALM][held.id].name == "Ops"
    assert merged == []
    assert counter.counts() == {(REALM, "caller", "name"): 1}
    assert [e["field"] for e in logs if e["event"] == "qbo_change_overwritten"] == ["name"]


def valid(name: str, *, active: bool = True, qb_id: str = "") -> ValidClass:
    checked = validate(ClassInput(name=name, full_name=name, is_active=active, qb_id=qb_id))
    assert isinstance(checked, ValidClass)
    return checked


def stored(
    name: str, *, synced: bool = True, edited: bool = False, active: bool = True
) -> StoredRow:
    # The key is the case-folded identity key, as the store holds it.
    return StoredRow(name, name, name.casefold(), False, active, None, False, synced, edited)


def test_an_identical_resend_of_a_synced_row_plans_nothing() -> None:
    known = KnownRows({"ops": "r1"}, {}, {"r1": stored("Ops")})
    plan = plan_upsert([valid("Ops")], known)
    assert plan.results == ["r1"]
    assert plan.unchanged == {"r1"}
    assert plan.updates == {}
    assert plan.queue == {}


def test_a_changed_or_unsynced_resend_is_updated_and_queued() -> None:
    known = KnownRows({"ops": "r1"}, {}, {"r1": stored("Ops")})
    assert plan_upsert([valid("Ops", active=False)], known).queue == {"r1": 1}
    pending = KnownRows({"ops": "r1"}, {}, {"r1": stored("Ops", synced=False)})
    assert plan_upsert([valid("Ops")], pending).queue == {"r1": 1}


def renamed_in_qbo() -> KnownRows:
    """ "Ops" (sent by the caller) was renamed "Operations" in QBO and read back."""
    row = StoredRow(
        "Operations",
        "Operations",
        "operations",
        False,
        True,
        None,
        False,
        True,
        True,
        sent_key="ops",
        sent_full_name="Ops",
        sent_active=True,
    )
    return KnownRows({"operations": "r1", "ops": "r1"}, {"7": "r1"}, {"r1": row})


def test_the_caller_repeating_itself_after_a_qbo_rename_changes_nothing() -> None:
    plan = plan_upsert([valid("Ops")], renamed_in_qbo())
    assert plan.results == ["r1"]
    assert plan.unchanged == {"r1"}
    assert plan.queue == {}


def test_a_field_the_caller_changed_is_taken_and_qbos_rename_stands() -> None:
    plan = plan_upsert([valid("Ops", active=False)], renamed_in_qbo())
    row = plan.updates["r1"]
    assert (row.name, row.full_name, row.is_active) == ("Operations", "Operations", False)
    assert plan.sent["r1"].full_name == "Ops"  # remembered as the caller sent it
    assert plan.overwrites == {}
    assert plan.queue == {"r1": 1}


def test_a_resend_undoing_a_qbo_edit_names_the_fields_it_overwrites() -> None:
    plan = plan_upsert([valid("Ops Team", qb_id="7")], renamed_in_qbo())
    assert plan.updates["r1"].name == "Ops Team"
    assert plan.overwrites == {"r1": ("name",)}
