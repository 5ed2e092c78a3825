"""A batch's outcomes in one transaction, and when due jobs are combined into a batch."""

from __future__ import annotations

import pytest

from classsync.sync.ports import JobStatus
from tests.unit.test_engine_decisions import REALM, make_rig

pytestmark = pytest.mark.unit


def test_a_batch_is_recorded_in_one_transaction_and_every_waiting_caller_told() -> None:
    rig = make_rig(batch_size=30)
    ids = rig.save("A", "B", "C", "D")
    ticket = rig.board.subscribe(ids)
    commits = rig.db.commits
    rig.step()
    assert rig.qbo.operations() == ["batch_write"]
    assert rig.db.commits - commits == 2  # the claim, then all four outcomes
    settled = rig.board.take(ticket, timeout=0)
    assert {i: settled[i].status for i in ids} == dict.fromkeys(ids, JobStatus.SYNCED.value)
    assert sorted(rig.db.row(i).qb_id or "" for i in ids) == ["100", "101", "102", "103"]


def test_a_version_sent_during_a_batch_is_queued_again_not_marked_done() -> None:
    rig = make_rig(batch_size=30)
    first, second = rig.save("A", "B")
    rig.qbo.script("batch_write", lambda: rig.save("B", active=False))  # generation 2 of B
    rig.step()
    assert rig.job(first).status == JobStatus.SYNCED
    job = rig.job(second)
    assert (job.status, job.generation) == (JobStatus.PENDING, 2)
    assert rig.db.row(second).qb_id is not None  # QBO's link is kept
    rig.drain()
    assert rig.qbo.operations() == ["batch_write", "update"]
    assert rig.job(second).status == JobStatus.SYNCED
    assert len(rig.qbo.classes[REALM]) == 2  # nothing created twice


def test_a_job_whose_lease_was_taken_over_is_not_finished_by_the_batch() -> None:
    rig = make_rig(batch_size=30)
    first, second = rig.save("A", "B")

    def taken_over() -> None:  # B's lease ran out and another worker holds it now
        rig.db.job(second).lease_owner = "someone-else"

    rig.qbo.script("batch_write", taken_over)
    rig.step()
    assert rig.job(first).status == JobStatus.SYNCED
    job = rig.job(second)
    assert (job.status, job.lease_owner) == (JobStatus.IN_PROGRESS, "someone-else")
    assert rig.db.row(second).qb_id is not None  # the link is stored: QBO holds the class


def test_a_row_another_transaction_holds_is_recorded_on_its_own() -> None:
    rig = make_rig(batch_size=30)
    ids = rig.save("A", "B", "C")
    rig.db.locked_by_others.add(ids[1])  # an ingest is writing B's row
    commits = rig.db.commits
    rig.step()
    assert rig.db.commits - commits == 3  # the claim, A and C together, then B alone
    assert [rig.job(i).status for i in ids] == [JobStatus.SYNCED] * 3


def test_due_jobs_are_combined_by_one_worker_at_a_time_while_the_budget_has_room() -> None:
    rig = make_rig(batch_size=30)
    batches = rig.engine._batch_sync
    assert batches.claim_limit("R", "w0") == 30
    assert batches.claim_limit("R", "w1") == 1  # w0 is claiming a batch: w1 takes a single job
    assert batches.claim_limit("other", "w2") == 30  # another realm has a budget of its own
    batches.claim_done("w0")
    assert batches.claim_limit("R", "w1") == 30
    batches.claim_done("w1")
    batches.claim_done("w2")


def test_a_batch_in_one_realm_leaves_the_other_realms_batching() -> None:
    rig = make_rig(batch_size=30, per_minute=500)  # QBO's own: a batch every 1.5 s per realm
    rig.save("A1", "A2", "A3", realm="A")
    rig.save("B1", "B2", "B3", realm="B")
    rig.step(2)
    # After A's batch A claims singles for a while; B's budget is its own, so B still batches.
    assert [(c.operation, c.realm_id) for c in rig.qbo.calls] == [
        ("batch_write", "A"),
        ("batch_write", "B"),
    ]


def test_after_a_batch_workers_claim_singles_until_the_budget_has_room_again() -> None:
    rig = make_rig(batch_size=30)  # 6,000/min: 480 batches/min, one every 0.125 s
    rig.save(*(f"C{i}" for i in range(40)))
    rig.step()
    assert rig.qbo.operations() == ["batch_write"]
    batches = rig.engine._batch_sync
    realm = rig.qbo.calls[0].realm_id
    assert batches.claim_limit(realm, "w1") == 30  # the next batch is within the budget's wait
    batches.claim_done("w1")
    rig.step()
    assert rig.qbo.operations() == ["batch_write", "batch_write"]
    assert sum(rig.job(i).status == JobStatus.SYNCED for i in rig.db.tables.jobs) == 40
