"""The engine when QBO answers with an Id another local row holds, and case variants of names."""

from __future__ import annotations

import pytest

from classsync.sync.ports import JobStatus
from tests.unit.test_engine_decisions import REALM, make_rig

pytestmark = pytest.mark.unit


def test_a_qbo_id_another_row_holds_fails_the_job_in_one_attempt_naming_that_row() -> None:
    rig = make_rig()
    holder, class_id = rig.save("Elsewhere", "Sales")
    elsewhere = rig.qbo.seed(REALM, "Elsewhere")
    rig.db.row(holder).qb_id = elsewhere.id  # e.g. rows copied from another QBO company
    rig.db.job(holder).status = JobStatus.SYNCED.value
    rig.qbo.script("create", elsewhere)  # QBO answers with the Id the other row holds
    ticket = rig.board.subscribe([class_id])
    rig.drain()
    job = rig.job(class_id)
    assert (job.status, job.attempts, job.last_error_code) == ("FAILED", 1, "QB_ID_CONFLICT")
    assert holder in (job.last_error_message or "")
    assert f"Id {elsewhere.id}" in (job.last_error_message or "")
    assert rig.qbo.operations() == ["create"]  # no retry
    assert rig.db.row(class_id).qb_id is None
    assert rig.db.row(holder).qb_id == elsewhere.id
    settled = rig.board.take(ticket, timeout=0)[class_id]
    assert (settled.status, settled.error_code) == ("FAILED", "QB_ID_CONFLICT")


def test_a_class_found_by_name_whose_id_another_row_holds_fails_the_same_way() -> None:
    rig = make_rig()
    holder, class_id = rig.save("Old Sales", "Sales")
    existing = rig.qbo.seed(REALM, "Sales")  # QBO has "Sales": 6240, then a look-up by name
    rig.db.row(holder).qb_id = existing.id
    rig.db.job(holder).status = JobStatus.SYNCED.value
    rig.drain()
    job = rig.job(class_id)
    assert (job.status, job.attempts, job.last_error_code) == ("FAILED", 1, "QB_ID_CONFLICT")
    assert holder in (job.last_error_message or "")
    assert rig.qbo.operations() == ["create", "find_by_name"]


def test_in_a_batch_only_the_conflicting_job_fails() -> None:
    rig = make_rig(batch_size=10)
    holder = rig.save("Elsewhere")[0]
    rig.db.job(holder).status = JobStatus.SYNCED.value
    first, second = rig.save("Alpha", "Beta")
    # While the batch is in flight, the other row comes to hold the Id QBO gives Alpha (100).
    rig.qbo.script("batch_write", lambda: setattr(rig.db.row(holder), "qb_id", "100"))
    rig.step()
    assert rig.qbo.operations() == ["batch_write"]
    job = rig.job(first)
    assert (job.status, job.attempts, job.last_error_code) == ("FAILED", 1, "QB_ID_CONFLICT")
    assert holder in (job.last_error_message or "")
    assert rig.job(second).status == JobStatus.SYNCED
    assert rig.db.row(second).qb_id == "101"


def test_a_case_variant_is_one_row_and_renames_the_qbo_class() -> None:
    rig = make_rig()
    [first] = rig.save("Marketing")
    rig.drain()
    [again] = rig.save("marketing")
    assert again == first
    rig.drain()
    row = rig.db.row(first)
    assert (row.name, rig.job(first).status) == ("marketing", JobStatus.SYNCED)
    [qbo_class] = rig.qbo.classes[REALM].values()
    assert (qbo_class.id, qbo_class.name) == (row.qb_id, "marketing")


def test_a_qbo_class_in_other_casing_is_linked_and_takes_the_casing_sent() -> None:
    rig = make_rig()
    existing = rig.qbo.seed(REALM, "MARKETING")
    [class_id] = rig.save("Marketing")
    rig.drain()
    assert rig.qbo.operations() == ["create", "find_by_name", "update"]
    assert rig.db.row(class_id).qb_id == existing.id
    assert [c.name for c in rig.qbo.classes[REALM].values()] == ["Marketing"]
