"""Fair claiming across realms: turns, per-realm worker caps, paused realms skipped."""

from __future__ import annotations

import pytest

from classsync.domain import ClassInput, ValidClass, validate
from classsync.sync.engine import SyncEngine
from classsync.sync.limiter import RateLimiter
from classsync.sync.realm_rotation import RealmRotation
from classsync.sync.retry_policy import RetryPolicy
from classsync.sync.settled import SettledBoard
from tests.fakes import FakeClock, FakeDatabase, FakeQboGateway

pytestmark = pytest.mark.unit


def _rotation(workers: int = 4, **limits: int) -> tuple[RealmRotation, RateLimiter, FakeClock]:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=6000, clock=clock.monotonic, sleep=clock.sleep, **limits)
    rotation = RealmRotation(limiter, workers=workers, refresh_seconds=1.0, clock=clock.monotonic)
    return rotation, limiter, clock


def test_realms_with_due_work_take_turns() -> None:
    rotation, _, clock = _rotation()
    rotation.refresh(["A", "B", "C"], looked_at=clock.monotonic())
    taken = []
    for _ in range(6):
        realm = rotation.take(set())
        assert realm is not None
        taken.append(realm)
        rotation.release(realm)
    assert taken == ["A", "B", "C", "A", "B", "C"]


def test_one_realm_never_holds_every_worker() -> None:
    rotation, _, clock = _rotation(workers=3)
    rotation.refresh(["A"], looked_at=clock.monotonic())
    assert [rotation.take(set()), rotation.take(set()), rotation.take(set())] == ["A", "A", None]
    rotation.wake("B")  # a newly busy realm finds the worker kept back
    assert rotation.take(set()) == "B"


def test_a_realm_holds_no_more_workers_than_its_in_flight_share() -> None:
    rotation, limiter, clock = _rotation(workers=10, max_in_flight=4)
    rotation.refresh(["A"], looked_at=clock.monotonic())
    assert [rotation.take(set()) for _ in range(5)] == ["A"] * 4 + [None]
    limiter.set_replicas(2)  # another replica now holds half of the realm's limits
    rotation.release("A")
    rotation.release("A")
    assert rotation.take(set()) is None  # 2 held = the new share of 2


def test_a_paused_realm_is_skipped_until_its_pause_ends() -> None:
    rotation, limiter, clock = _rotation()
    rotation.refresh(["A", "B"], looked_at=clock.monotonic())
    limiter.pause("A", 30)
    assert rotation.take(set()) == "B"
    rotation.release("B")
    assert rotation.take({"B"}) is None
    clock.advance(31)
    assert rotation.take({"B"}) == "A"


def test_a_drained_realm_is_dropped_unless_work_arrived_while_looking() -> None:
    rotation, _, clock = _rotation()
    rotation.refresh(["A", "B"], looked_at=clock.monotonic())
    looked_at = clock.monotonic()
    clock.advance(0.01)
    rotation.wake("A")  # committed while the claim in A was looking
    rotation.drained("A", looked_at=looked_at)
    rotation.drained("B", looked_at=looked_at)
    assert rotation.take(set()) == "A"
    rotation.release("A")
    assert rotation.take({"A"}) is None


def test_a_refresh_keeps_realms_announced_after_its_read() -> None:
    rotation, _, clock = _rotation()
    looked_at = clock.monotonic()
    clock.advance(0.01)
    rotation.wake("New")
    rotation.refresh(["Old"], looked_at=looked_at)
    assert {rotation.take(set()), rotation.take(set())} == {"Old", "New"}


def _save(db: FakeDatabase, clock: FakeClock, realm_id: str, *names: str) -> None:
    items = [validate(ClassInput(name=name)) for name in names]
    assert all(isinstance(item, ValidClass) for item in items)
    with db.uow() as uow:
        uow.classes.save_batch(items, realm_id, clock.now())  # type: ignore[arg-type]
        uow.commit()


def test_a_new_job_in_an_idle_realm_is_claimed_before_the_rest_of_a_backlog() -> None:
    clock = FakeClock()
    db = FakeDatabase()
    engine = SyncEngine(
        db.uow,
        FakeQboGateway(),
        RateLimiter(per_minute=6000, clock=clock.monotonic, sleep=clock.sleep),
        RetryPolicy(),
        SettledBoard(),
        workers=2,
        poll_seconds=0.01,
        clock=clock,
    )
    _save(db, clock, "busy", *[f"Backlog {i}" for i in range(50)])
    engine.run_once()
    clock.advance(1)
    _save(db, clock, "idle", "Just One")
    engine.wake("idle")
    engine.run_once()
    [just_one] = [row for row in db.tables.classes.values() if row.name == "Just One"]
    # Claimed in the order of the queue (oldest first), it would wait for all 49 others.
    assert db.job(just_one.id).status == "SYNCED"
    synced = [j for j in db.tables.jobs.values() if j.status == "SYNCED"]
    assert len(synced) == 2
