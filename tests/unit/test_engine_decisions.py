"""The sync engine's decisions, driven step by step with in-memory fakes (no database, no sockets)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from classsync.domain import (
    ClassInput,
    ClassWrite,
    QboDisconnected,
    QboOutcomeUnknown,
    QboRejected,
    QboRetryable,
    QboServerError,
    QboStaleSyncToken,
    QboThrottled,
    ValidClass,
    validate,
)
from classsync.sync.engine import SyncEngine
from classsync.sync.limiter import RateLimiter
from classsync.sync.ports import JobStatus
from classsync.sync.retry_policy import RetryPolicy
from classsync.sync.settled import SettledBoard
from tests.fakes import (
    AnswerThenRaise,
    FakeClock,
    FakeDatabase,
    FakeJobRow,
    FakeQboGateway,
)

pytestmark = pytest.mark.unit

REALM = "realm-1"
LEASE_S = 60.0


@dataclass
class Rig:
    """An engine over fakes, and the fakes to script and inspect."""

    db: FakeDatabase
    qbo: FakeQboGateway
    clock: FakeClock
    limiter: RateLimiter
    board: SettledBoard
    engine: SyncEngine

    def save(
        self, *full_names: str, active: bool = True, qb_id: str = "", realm: str = REALM
    ) -> list[str]:
        """Store Classes as a ClassRequest would (one transaction); their class ids."""
        items = []
        for full_name in full_names:
            checked = validate(
                ClassInput(
                    name=full_name.split(":")[-1],
                    full_name=full_name,
                    is_sub_class=":" in full_name,
                    is_active=active,
                    qb_id=qb_id,
                )
            )
            assert isinstance(checked, ValidClass), checked
            items.append(checked)
        with self.db.uow() as uow:
            stored = uow.classes.save_batch(items, realm, self.clock.now())
            uow.commit()
        return [s.class_id for s in stored]  # type: ignore[union-attr]

    def step(self, rounds: int = 1) -> None:
        """Let one worker claim and sync ``rounds`` times."""
        for _ in range(rounds):
            self.engine.run_once()

    def drain(self) -> None:
        """Let one worker work until nothing is due."""
        for _ in range(100):
            if not self.engine.run_once():
                return
        raise AssertionError("the queue never drained")

    def job(self, class_id: str) -> FakeJobRow:
        """The committed job of ``class_id``."""
        return self.db.job(class_id)

    def wait_before_next_call(self) -> float:
        """Seconds the next QBO call to the realm must wait (the realm's pause, or pacing)."""
        before = self.clock.monotonic()
        with self.limiter.call(REALM):
            return self.clock.monotonic() - before


def make_rig(*, batch_size: int = 1, per_minute: int = 6000, **policy: Any) -> Rig:
    clock = FakeClock()
    db = FakeDatabase()
    qbo = FakeQboGateway()
    limiter = RateLimiter(per_minute=per_minute, clock=clock.monotonic, sleep=clock.sleep)
    board = SettledBoard()
    settings = {"base_seconds": 1.0, "max_seconds": 8.0, "store_write_pauses": (0.0, 0.0)}
    engine = SyncEngine(
        db.uow,
        qbo,
        limiter,
        RetryPolicy(**{**settings, **policy}),
        board,
        workers=2,
        lease_seconds=LEASE_S,
        poll_seconds=0.01,
        batch_size=batch_size,
        clock=clock,
    )
    return Rig(db, qbo, clock, limiter, board, engine)


def test_a_new_class_is_created_once_in_two_transactions_and_reported() -> None:
    rig = make_rig()
    [class_id] = rig.save("Sales")
    ticket = rig.board.subscribe([class_id])
    commits = rig.db.commits
    rig.step()
    assert rig.db.commits - commits == 2  # the claim, then the outcome: the tuned hot path
    job, row = rig.job(class_id), rig.db.row(class_id)
    assert (job.status, job.attempts, job.lease_owner) == (JobStatus.SYNCED, 0, None)
    assert (row.qb_id, row.version_token) == ("100", 0)
    assert rig.qbo.operations() == ["create"]
    assert rig.board.take(ticket, timeout=0)[class_id].status == JobStatus.SYNCED


# --- retry or fail; what counts as an attempt ------------------------------------------------


def test_a_server_error_is_retried_later_and_counted() -> None:
    rig = make_rig(base_seconds=4, max_seconds=4)
    [class_id] = rig.save("Sales")
    rig.qbo.script("create", QboServerError("QBO answered 503", status=503))
    now = rig.clock.now()
    rig.step()
    job = rig.job(class_id)
    assert (job.status, job.attempts, job.last_error_code) == ("PENDING", 1, "QBO_UNAVAILABLE")
    assert job.next_attempt_at is not None
    assert now + timedelta(seconds=2) <= job.next_attempt_at <= now + timedelta(seconds=4)
    rig.clock.advance(4)
    rig.drain()
    assert rig.job(class_id).status == JobStatus.SYNCED
    assert rig.qbo.operations() == ["create", "create"]


def test_a_refusal_fails_the_job_with_qbos_code_and_no_retry() -> None:
    rig = make_rig()
    [class_id] = rig.save("Sales")
    rig.qbo.script("create", QboRejected("QBO fault 6000: business rule", code="6000"))
    rig.drain()
    rig.clock.advance(3600)
    rig.drain()
    job = rig.job(class_id)
    assert (job.status, job.attempts, job.last_error_code) == ("FAILED", 1, "QBO_6000")
    assert rig.qbo.operations() == ["create"]


def test_attempts_run_out_and_the_job_fails_as_exhausted() -> None:
    rig = make_rig(max_attempts=2, base_seconds=1, max_seconds=1)
    [class_id] = rig.save("Sales")
    rig.qbo.script("create", *[QboServerError("503", status=503)] * 2)
    rig.drain()
    rig.clock.advance(2)
    rig.drain()
    job = rig.job(class_id)
    assert (job.status, job.last_error_code) == ("FAILED", "ATTEMPTS_EXHAUSTED")
    assert job.last_error_message == "gave up after 2 attempts: 503"


def test_a_throttle_is_not_counted_and_pauses_the_realm_for_retry_after() -> None:
    rig = make_rig()
    [class_id] = rig.save("Sales")
    rig.qbo.script("create", QboThrottled("429", retry_after=7))
    now = rig.clock.now()
    rig.step()
    job = rig.job(class_id)
    assert (job.status, job.attempts, job.last_error_code) == ("PENDING", 0, "QBO_3001")
    assert job.next_attempt_at == now + timedelta(seconds=7)
    assert rig.wait_before_next_call() == pytest.approx(7.0)


def test_a_disconnected_realm_is_not_counted_and_waits_for_a_reconnect() -> None:
    rig = make_rig()
    [class_id] = rig.save("Sales")
    rig.qbo.script("create", QboDisconnected("QBO refused the refresh token (invalid_grant)"))
    now = rig.clock.now()
    rig.step()
    job = rig.job(class_id)
    assert (job.status, job.attempts, job.last_error_code) == ("PENDING", 0, "QBO_DISCONNECTED")
    assert job.next_attempt_at == now + timedelta(seconds=30)
    assert rig.wait_before_next_call() < 1  # not a pause: the realm's other work goes on


def test_a_crash_of_ours_is_retried_and_counted_under_its_own_code() -> None:
    rig = make_rig()
    [class_id] = rig.save("Sales")
    rig.qbo.script("create", RuntimeError("a bug"))
    rig.step()
    job = rig.job(class_id)
    assert (job.status, job.attempts, job.last_error_code) == ("PENDING", 1, "INTERNAL_ERROR")
    assert job.last_error_message == "internal error: RuntimeError"


# --- realm pauses ----------------------------------------------------------------------------


def test_a_burst_of_503s_pauses_the_realm() -> None:
    rig = make_rig(base_seconds=10, max_seconds=10)
    ids = rig.save("A", "B", "C")
    rig.qbo.script("create", *[QboServerError("QBO answered 503", status=503)] * 3)
    rig.step(3)
    # The 503 paused the realm for its backoff (5-10 s): no worker claims its other jobs (none
    # is parked in the limiter either), instead of every worker hammering a struggling QBO.
    assert [rig.job(i).attempts for i in ids] == [1, 0, 0]
    assert [rig.job(i).lease_owner for i in ids[1:]] == [None, None]
    assert rig.clock.slept == []
    assert rig.wait_before_next_call() >= 5
    # Once the pause is over, each further 503 pauses the realm again.
    for expected in ([1, 1, 0], [1, 1, 1]):
        rig.clock.advance(10)
        rig.step()
        assert [rig.job(i).attempts for i in ids] == expected


def test_a_500_in_a_batch_pauses_the_realm() -> None:
    rig = make_rig(batch_size=30, base_seconds=10, max_seconds=10)
    ids = rig.save("A", "B", "C")
    rig.qbo.script("batch_write", QboServerError("QBO answered 500", status=500))
    rig.step()
    assert [rig.job(i).status for i in ids] == ["PENDING"] * 3
    assert rig.wait_before_next_call() >= 5


# --- parents ---------------------------------------------------------------------------------


def test_a_child_waits_uncounted_while_its_parent_is_not_in_qbo() -> None:
    rig = make_rig()
    parent, child = rig.save("A", "A:B")
    # The parent's first try times out (a 503 would pause the realm, and the child with it).
    rig.qbo.script("create", QboRetryable("read timed out"))
    rig.step()
    now = rig.clock.now()
    rig.step()  # the child: its parent has no QBO Id yet
    job = rig.job(child)
    assert (job.status, job.attempts, job.last_error_code) == ("PENDING", 0, "PENDING")
    assert job.next_attempt_at == now + timedelta(milliseconds=200)
    assert rig.qbo.operations() == ["create"]  # only the parent's
    rig.clock.advance(2)
    rig.drain()
    parent_qb_id = rig.db.row(parent).qb_id
    assert rig.job(child).status == JobStatus.SYNCED
    assert rig.qbo.classes[REALM][rig.db.row(child).qb_id or ""].parent_id == parent_qb_id


def test_a_child_fails_when_its_parent_failed() -> None:
    rig = make_rig()
    parent, child = rig.save("A", "A:B")
    rig.qbo.script("create", QboRejected("QBO fault 6000", code="6000"))
    rig.drain()
    assert rig.job(parent).status == JobStatus.FAILED
    job = rig.job(child)
    assert (job.status, job.last_error_code) == ("FAILED", "PARENT_FAILED")
    assert rig.qbo.operations() == ["create"]


# --- 5010: stale SyncToken -------------------------------------------------------------------


def _synced(rig: Rig, name: str) -> tuple[str, str]:
    [class_id] = rig.save(name)
    rig.drain()
    qb_id = rig.db.row(class_id).qb_id
    assert qb_id is not None
    return class_id, qb_id


def test_a_stale_sync_token_is_reread_and_the_update_retried_with_the_fresh_one() -> None:
    rig = make_rig()
    class_id, qb_id = _synced(rig, "Sales")
    rig.qbo.edit(REALM, qb_id)  # someone else changed it in QBO: SyncToken 0 -> 1
    rig.save("Sales", active=False, qb_id=qb_id)
    del rig.qbo.calls[:]
    rig.drain()
    assert rig.qbo.operations() == ["update", "read", "update"]
    first, second = (c.argument for c in rig.qbo.calls if c.operation == "update")
    assert isinstance(first, ClassWrite)
    assert isinstance(second, ClassWrite)
    assert (first.sync_token, second.sync_token) == ("0", "1")
    assert first.request_id != second.request_id  # a different write, not a replay
    assert rig.job(class_id).status == JobStatus.SYNCED
    assert rig.db.row(class_id).version_token == 2  # the SyncToken QBO returned
    assert rig.qbo.classes[REALM][qb_id].active is False


def test_stale_sync_tokens_without_end_fail_the_job_after_the_allowed_rereads() -> None:
    rig = make_rig(stale_retries=1)
    class_id, qb_id = _synced(rig, "Sales")
    rig.save("Sales", active=False, qb_id=qb_id)
    rig.qbo.script("update", *[QboStaleSyncToken("stale", code="5010")] * 2)
    del rig.qbo.calls[:]
    rig.drain()
    assert rig.qbo.operations() == ["update", "read", "update"]
    assert (rig.job(class_id).status, rig.job(class_id).last_error_code) == ("FAILED", "QBO_5010")


# --- 6240: duplicate name --------------------------------------------------------------------


def test_a_duplicate_name_links_the_existing_class_and_updates_it() -> None:
    rig = make_rig()
    existing = rig.qbo.seed(REALM, "Sales", active=False)
    [class_id] = rig.save("Sales")
    commits = rig.db.commits
    rig.step()
    assert rig.qbo.operations() == ["create", "find_by_name", "update"]
    assert rig.db.commits - commits == 3  # claim, link, outcome
    row = rig.db.row(class_id)
    assert (row.qb_id, row.version_token) == (existing.id, 1)
    assert rig.job(class_id).status == JobStatus.SYNCED
    assert [c.active for c in rig.qbo.classes[REALM].values()] == [True]  # one class, updated


def test_a_duplicate_name_already_as_wanted_is_linked_without_an_update() -> None:
    rig = make_rig()
    existing = rig.qbo.seed(REALM, "Sales")
    [class_id] = rig.save("Sales")
    rig.drain()
    assert rig.qbo.operations() == ["create", "find_by_name"]
    assert rig.db.row(class_id).qb_id == existing.id


# --- outcome unknown -------------------------------------------------------------------------


def test_after_an_unknown_outcome_the_class_is_looked_up_before_any_create() -> None:
    rig = make_rig()
    [class_id] = rig.save("Sales")
    rig.qbo.script("create", AnswerThenRaise(QboOutcomeUnknown("timed out after sending")))
    rig.step()
    job = rig.job(class_id)
    assert (job.status, job.attempts, job.outcome_unknown) == ("PENDING", 1, True)
    rig.clock.advance(2)
    rig.drain()
    assert rig.qbo.operations() == ["create", "find_by_name"]
    assert len(rig.qbo.classes[REALM]) == 1  # never a duplicate
    job = rig.job(class_id)
    assert (job.status, job.outcome_unknown) == ("SYNCED", False)


def test_a_job_reclaimed_from_a_dead_worker_is_looked_up_before_any_create() -> None:
    rig = make_rig()
    [class_id] = rig.save("Sales")
    with rig.db.uow() as uow:  # a worker of another process leases it, writes it, and dies
        uow.jobs.claim(owner="dead", limit=1, lease=timedelta(seconds=5), now=rig.clock.now())
        uow.commit()
    written = rig.qbo.seed(REALM, "Sales")
    rig.drain()
    assert rig.qbo.operations() == []  # its lease has not run out yet
    rig.clock.advance(6)
    rig.drain()
    assert rig.qbo.operations() == ["find_by_name"]
    assert rig.db.row(class_id).qb_id == written.id
    assert rig.job(class_id).status == JobStatus.SYNCED


def test_an_unknown_batch_outcome_sends_every_item_to_a_lookup_not_a_second_create() -> None:
    rig = make_rig(batch_size=30)
    ids = rig.save("A", "B", "C")
    rig.qbo.script("batch_write", AnswerThenRaise(QboOutcomeUnknown("connection dropped")))
    rig.step()
    assert [rig.job(i).outcome_unknown for i in ids] == [True] * 3
    rig.clock.advance(2)
    rig.drain()
    assert rig.qbo.operations() == ["batch_write"] + ["find_by_name"] * 3
    assert len(rig.qbo.classes[REALM]) == 3
    assert [rig.job(i).status for i in ids] == ["SYNCED"] * 3


# --- leases ----------------------------------------------------------------------------------


def test_a_version_sent_during_the_call_is_synced_next_not_marked_done() -> None:
    rig = make_rig()
    [class_id] = rig.save("Sales")
    rig.qbo.script("create", lambda: rig.save("Sales", active=False))  # generation 2 arrives
    ticket = rig.board.subscribe([class_id])
    rig.step()
    job = rig.job(class_id)
    assert (job.status, job.generation) == ("PENDING", 2)  # not SYNCED over the newer version
    assert rig.db.row(class_id).qb_id is not None  # but the link QBO gave is kept
    assert rig.board.take(ticket, timeout=0) == {}
    rig.drain()
    assert rig.qbo.operations() == ["create", "update"]
    assert rig.job(class_id).status == JobStatus.SYNCED
    assert [c.active for c in rig.qbo.classes[REALM].values()] == [False]


def test_an_outcome_is_not_written_once_another_worker_holds_the_lease() -> None:
    rig = make_rig()
    [class_id] = rig.save("Sales")

    def lease_runs_out_and_is_taken_over() -> None:
        rig.clock.advance(LEASE_S + 1)
        with rig.db.uow() as uow:
            [taken] = uow.jobs.claim(
                owner="sibling", limit=1, lease=timedelta(seconds=60), now=rig.clock.now()
            )
            uow.commit()
        assert taken.outcome_unknown

    rig.qbo.script("create", lease_runs_out_and_is_taken_over)
    rig.step()
    job = rig.job(class_id)
    assert (job.status, job.lease_owner, job.attempts) == ("IN_PROGRESS", "sibling", 0)
    assert rig.db.row(class_id).qb_id is not None  # QBO holds it: the link is stored anyway


def test_a_failure_is_not_written_once_another_worker_holds_the_lease() -> None:
    rig = make_rig()
    [class_id] = rig.save("Sales")

    def taken_over_then_503() -> None:
        rig.clock.advance(LEASE_S + 1)
        with rig.db.uow() as uow:
            uow.jobs.claim(
                owner="sibling", limit=1, lease=timedelta(seconds=60), now=rig.clock.now()
            )
            uow.commit()
        raise QboServerError("503", status=503)

    rig.qbo.script("create", taken_over_then_503)
    rig.step()
    job = rig.job(class_id)
    assert (job.status, job.lease_owner, job.attempts, job.last_error_code) == (
        "IN_PROGRESS",
        "sibling",
        0,
        None,
    )


# --- store failures --------------------------------------------------------------------------


def test_a_lost_store_connection_while_recording_is_retried_from_memory() -> None:
    rig = make_rig()
    [class_id] = rig.save("Sales")
    rig.qbo.script("create", lambda: rig.db.fail_next_commits(1))
    rig.drain()
    assert rig.qbo.operations() == ["create"]
    assert rig.job(class_id).status == JobStatus.SYNCED


def test_an_unrecordable_outcome_is_left_to_the_lease_and_looked_up_not_redone() -> None:
    rig = make_rig()  # two write retries: three failed commits exhaust them
    [class_id] = rig.save("Sales")
    rig.qbo.script("create", lambda: rig.db.fail_next_commits(3))
    rig.step()
    assert rig.job(class_id).status == JobStatus.IN_PROGRESS  # the worker lives on
    rig.clock.advance(LEASE_S + 1)
    rig.drain()
    assert rig.qbo.operations() == ["create", "find_by_name"]
    assert rig.job(class_id).status == JobStatus.SYNCED
    assert len(rig.qbo.classes[REALM]) == 1


# --- batches ---------------------------------------------------------------------------------


def test_ready_jobs_go_in_one_batch_with_one_transaction_for_all_outcomes() -> None:
    rig = make_rig(batch_size=30)
    ids = rig.save("A", "B", "C")
    commits = rig.db.commits
    rig.step()
    assert rig.qbo.operations() == ["batch_write"]
    assert rig.db.commits - commits == 1 + 1  # the claim, then every outcome together
    assert [rig.job(i).status for i in ids] == ["SYNCED"] * 3


def test_a_duplicate_name_in_a_batch_is_recovered_on_the_single_path() -> None:
    rig = make_rig(batch_size=30)
    existing = rig.qbo.seed(REALM, "B")
    ids = rig.save("A", "B", "C")
    rig.drain()
    assert rig.qbo.operations() == ["batch_write", "create", "find_by_name"]
    assert rig.db.row(ids[1]).qb_id == existing.id
    assert [rig.job(i).status for i in ids] == ["SYNCED"] * 3
