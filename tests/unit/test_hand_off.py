"""Direct hand-off: only to an idle worker and a realm with room; answered without a look-up."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from classsync.domain import ClassInput, SyncStatus, ValidClass, join_path
from classsync.sync.hand_off import HandOff
from classsync.sync.limiter import RateLimiter
from classsync.sync.ports import (
    ClaimedJob,
    ClassSnapshot,
    JobLease,
    JobState,
    StoredClass,
    UnitOfWork,
)
from classsync.sync.realm_rotation import RealmRotation
from classsync.sync.service import Accepted, IngestService
from classsync.sync.settled import SettledBoard
from tests.fakes import FakeClock, FakeDatabase

pytestmark = pytest.mark.unit


def _hand_off(workers: int = 4, **limits: int) -> tuple[HandOff, RealmRotation, list[int]]:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=6000, clock=clock.monotonic, sleep=clock.sleep, **limits)
    rotation = RealmRotation(limiter, workers=workers, refresh_seconds=1.0, clock=clock.monotonic)
    rings: list[int] = []
    lease = timedelta(seconds=60)
    return (
        HandOff(rotation, limiter, clock, "proc", lease, lambda: rings.append(1)),
        rotation,
        rings,
    )


def _job(class_id: str, realm_id: str = "A") -> ClaimedJob:
    snapshot = ClassSnapshot(
        class_id, None, "N", "n", is_active=True, is_sparse=False, version_token=0
    )
    return ClaimedJob(class_id, realm_id, 1, 0, 1, outcome_unknown=False, snapshot=snapshot)


def test_nothing_is_reserved_without_an_idle_worker() -> None:
    hand_off, _, _ = _hand_off()
    assert hand_off.reserve("A") is None


def test_an_idle_worker_takes_one_hand_off_and_the_realm_is_held_meanwhile() -> None:
    hand_off, rotation, rings = _hand_off(workers=2)
    with hand_off.idle():
        first = hand_off.reserve("A")
        assert first is not None
        assert hand_off.reserve("A") is None  # the one idle worker is spoken for
        hand_off.hand_over(first, _job("c1"))
    assert rings == [1]
    assert hand_off.queued() == {first.owner: ["c1"]}  # renewed by the lease keeper meanwhile
    assert hand_off.take() == (first.owner, _job("c1"))
    assert hand_off.queued() == {}
    assert hand_off.take() is None
    rotation.refresh(["A"], looked_at=0.0)
    assert rotation.take(set()) is None  # per-realm cap (workers - 1 = 1) held by the hand-off
    rotation.release("A")
    assert rotation.take(set()) == "A"


def test_each_hand_off_leases_under_its_own_owner() -> None:
    hand_off, _, _ = _hand_off(workers=10)
    with hand_off.idle(), hand_off.idle():
        first, second = hand_off.reserve("A"), hand_off.reserve("B")
    assert first is not None
    assert second is not None
    assert first.owner != second.owner
    assert first.owner.startswith("proc-")


def test_a_realm_at_its_in_flight_share_gets_no_hand_off() -> None:
    hand_off, rotation, _ = _hand_off(workers=10, max_in_flight=1)
    rotation.refresh(["A"], looked_at=0.0)
    assert rotation.take(set()) == "A"  # a claimed job holds the realm's one slot
    with hand_off.idle():
        assert hand_off.reserve("A") is None
        assert hand_off.reserve("B") is not None


def test_a_cancelled_reservation_frees_the_worker_and_the_realm() -> None:
    hand_off, _rotation, _ = _hand_off(workers=2)
    with hand_off.idle():
        assert hand_off.reserve("A") is not None
        hand_off.cancel("A")
        assert hand_off.reserve("A") is not None


def test_a_state_settled_before_the_caller_subscribed_is_collected_for_its_generation() -> None:
    board = SettledBoard()
    synced = JobState("c1", SyncStatus.SYNCED.value, 2, "42", 0, None, None)
    board.post([synced])
    ticket = board.subscribe({"c1"}, since={"c1": 2})
    assert board.take(ticket, 0.0) == {"c1": synced}
    newer = board.subscribe({"c1"}, since={"c1": 3})  # a newer version is not that one
    assert board.take(newer, 0.0) == {}


class _OneClassStore:
    def __init__(self) -> None:
        self.leases: list[JobLease | None] = []

    def store_new(
        self, item: ValidClass, realm_id: str, now: datetime, lease: JobLease | None
    ) -> StoredClass | None:
        self.leases.append(lease)
        snapshot = ClassSnapshot(
            "id-1", None, item.name, item.key, True, False, 0, full_name=join_path(item.path)
        )
        claimed = None if lease is None else ClaimedJob("id-1", realm_id, 1, 0, 1, False, snapshot)
        return StoredClass(class_id="id-1", generation=1, claimed=claimed)


def test_a_one_class_call_is_stored_handed_over_and_answered_without_a_look_up() -> None:
    hand_off, _, _ = _hand_off()
    db = FakeDatabase()
    opened: list[int] = []

    def uow() -> UnitOfWork:
        opened.append(1)
        return db.uow()

    store = _OneClassStore()
    woken: list[str] = []
    ingest = IngestService(
        uow,
        SettledBoard(),
        woken.append,
        realm_id="A",
        max_classes_per_request=10,
        one_class=store,
        hand_off=hand_off,
    )
    with hand_off.idle():
        [accepted] = ingest.ingest(
            [ClassInput(name="Sales")], first_stream_index=0, request_number=1
        )
    assert isinstance(accepted, Accepted)
    assert store.leases[0] is not None
    assert hand_off.take() is not None  # straight to a worker: no doorbell for the queue
    assert woken == []
    [outcome] = ingest.settle([accepted], timeout=0)
    assert outcome.status is SyncStatus.PENDING
    assert outcome.id == "id-1"
    assert opened == []  # no unit of work: stored and answered in one round trip
