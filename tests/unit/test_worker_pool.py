"""The elastic worker pool: extra workers while busy realms outnumber them, never past the cap.

The pool's own bookkeeping is checked without threads (a no-op start); the engine's decision is
checked with real threads over the in-memory fakes: QBO calls of the busy realms block until
released, so the only way the idle realm's Class can sync meanwhile is a worker of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from classsync.domain import ClassInput, ClassWrite, QboClass, QboError, ValidClass, validate
from classsync.sync.clock import SystemClock
from classsync.sync.engine import SyncEngine
from classsync.sync.limiter import RateLimiter
from classsync.sync.realm_rotation import RealmRotation
from classsync.sync.retry_policy import RetryPolicy
from classsync.sync.settled import SettledBoard
from classsync.sync.worker_pool import WorkerPool, idle_too_long
from tests.fakes import FakeClock, FakeDatabase, FakeQboGateway
from tests.fakes.store import FakeJobRow

pytestmark = pytest.mark.unit


def _pool(base: int = 2, limit: int = 4) -> tuple[WorkerPool, list[str]]:
    started: list[str] = []
    pool = WorkerPool(
        lambda owner: None,
        base=base,
        limit=limit,
        owner_prefix="p",
        start_thread=lambda thread: started.append(thread.name),
    )
    return pool, started


def test_the_pool_grows_up_to_its_limit_and_no_further() -> None:
    pool, started = _pool(base=2, limit=4)
    pool.start()
    assert pool.size == 2
    assert [pool.grow(), pool.grow(), pool.grow()] == [True, True, False]
    assert pool.size == 4
    assert started == [f"sync-worker-{n}" for n in range(4)]


def test_nothing_is_added_before_start_or_after_close() -> None:
    pool, started = _pool()
    assert not pool.grow()  # an engine stepped by hand (tests) gets no thread behind its back
    pool.start()
    pool.close()
    assert not pool.grow()
    assert len(started) == 2


def test_extra_workers_retire_down_to_the_base_and_their_owner_names_are_reused() -> None:
    pool, started = _pool(base=1, limit=3)
    pool.start()
    pool.grow()
    pool.grow()
    assert pool.retire("p-1")
    assert pool.retire("p-0")  # any idle worker may go while more than the base run
    assert not pool.retire("p-2")  # the last one stays
    assert pool.size == 1
    pool.grow()
    assert started[-1] == "sync-worker-0"  # the smallest free slot
    assert pool.owners() == ["p-0", "p-1", "p-2"]  # every name that may hold a lease


def test_a_growth_asked_for_during_another_decision_is_taken_up_not_lost() -> None:
    pool, _ = _pool(base=1, limit=5)
    pool.start()
    asked_inside: list[bool] = []

    def wanted() -> bool:
        if not asked_inside:  # while deciding, another caller asks (and does not wait)
            asked_inside.append(pool.grow_if(lambda: True))
        return True

    assert pool.grow_if(wanted)
    assert asked_inside == [False]  # it did not decide itself...
    assert pool.size == 3  # ...but its request was carried out by the decider


def test_a_limit_below_the_base_is_refused() -> None:
    with pytest.raises(ValueError, match="base"):
        _pool(base=3, limit=2)


def test_an_idle_worker_leaves_only_after_a_few_seconds() -> None:
    assert not idle_too_long(100.0, now=101.0)
    assert idle_too_long(100.0, now=106.0)


def _rotation(workers: int = 2) -> tuple[RealmRotation, RateLimiter, FakeClock]:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=6000, clock=clock.monotonic, sleep=clock.sleep)
    rotation = RealmRotation(limiter, workers=workers, refresh_seconds=1.0, clock=clock.monotonic)
    return rotation, limiter, clock


def test_a_realm_without_a_worker_is_unserved_until_one_takes_it() -> None:
    rotation, _, clock = _rotation()
    rotation.refresh(["A", "B"], looked_at=clock.monotonic())
    assert rotation.take(set()) == "A"
    assert rotation.has_unserved()  # B
    assert rotation.take(set()) == "B"
    assert not rotation.has_unserved()


def test_a_realm_without_a_worker_goes_before_one_that_holds_one() -> None:
    rotation, _, clock = _rotation(workers=8)
    rotation.refresh(["A", "B", "C"], looked_at=clock.monotonic())
    assert [rotation.take(set()) for _ in range(3)] == ["A", "B", "C"]
    rotation.release("B")
    rotation.wake("D")  # next in turn, and it holds nothing
    assert [rotation.take(set()), rotation.take(set())] == ["D", "B"]
    assert rotation.take(set()) == "C"  # every realm is served: plain turns again


def test_a_realm_that_cannot_call_qbo_now_asks_for_no_worker() -> None:
    rotation, limiter, clock = _rotation()
    rotation.refresh(["A"], looked_at=clock.monotonic())
    limiter.pause("A", 30)  # a 429: a worker added for A would only wait
    assert not rotation.has_unserved()
    limiter.set_replicas(2)
    clock.advance(31)
    assert rotation.has_unserved()


def test_a_replica_adds_no_worker_past_its_share_of_a_realms_calls() -> None:
    # The pool never widens what replicas may send together: a worker is only wanted for a realm
    # where this replica's share of the in-flight slots has room, and every call takes a slot.
    clock = FakeClock()
    limiter = RateLimiter(
        max_in_flight=3, per_minute=6000, clock=clock.monotonic, sleep=clock.sleep
    )
    rotation = RealmRotation(limiter, workers=8, refresh_seconds=1.0, clock=clock.monotonic)
    limiter.set_replicas(2, rank=1)  # this replica's share: 1 of the realm's 3 slots
    rotation.refresh(["A"], looked_at=clock.monotonic())
    assert rotation.has_unserved()
    assert rotation.take(set()) == "A"
    assert not rotation.has_unserved()
    assert rotation.take(set()) is None
    limiter.set_replicas(4, rank=3)  # past the slots: no share at all
    rotation.release("A")
    assert not rotation.has_unserved()


class _SlowBusyRealms(FakeQboGateway):
    """QBO where every call of a realm named ``busy*`` blocks until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.blocked = threading.Semaphore(0)

    def _hold(self, realm_id: str) -> None:
        if realm_id.startswith("busy"):
            self.blocked.release()
            self.release.wait(30)

    def create(self, realm_id: str, write: ClassWrite) -> QboClass:
        self._hold(realm_id)
        return super().create(realm_id, write)

    def batch_write(self, realm_id: str, writes: Sequence[ClassWrite]) -> list[QboClass | QboError]:
        self._hold(realm_id)
        return super().batch_write(realm_id, writes)


def _save(db: FakeDatabase, realm_id: str, *names: str) -> None:
    items = [validate(ClassInput(name=name)) for name in names]
    assert all(isinstance(item, ValidClass) for item in items)
    with db.uow() as uow:
        uow.classes.save_batch(items, realm_id, SystemClock().now())  # type: ignore[arg-type]
        uow.commit()


def _idle_realm_synced_behind(
    busy_realms: int, *, workers: int, max_workers: int, blocked_calls: int | None = None
) -> tuple[bool, int]:
    """With ``blocked_calls`` (default: one per busy realm) QBO calls of ``busy*`` realms
    blocked, does a Class of an idle realm sync? And how many workers ran then."""
    db = FakeDatabase()
    qbo = _SlowBusyRealms()
    limiter = RateLimiter(max_in_flight=10, per_minute=60_000, clock=time.monotonic)
    engine = SyncEngine(
        db.uow,
        qbo,
        limiter,
        RetryPolicy(),
        SettledBoard(),
        workers=workers,
        max_workers=max_workers,
        poll_seconds=0.05,
        batch_size=5,
    )
    for n in range(busy_realms):
        _save(db, f"busy{n}", *[f"Backlog {n}-{i}" for i in range(20)])
    engine.start()
    try:
        for _ in range(busy_realms if blocked_calls is None else blocked_calls):
            assert qbo.blocked.acquire(timeout=10), "a busy realm never got a worker"
        _save(db, "idle", "Urgent")
        engine.wake("idle")
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            if any(j.realm_id == "idle" and j.status == "SYNCED" for j in _jobs(db)):
                return True, engine._pool.size
            time.sleep(0.01)
        return False, engine._pool.size
    finally:
        qbo.release.set()
        engine.stop(timeout=5)


def _jobs(db: FakeDatabase) -> list[FakeJobRow]:
    return list(db.tables.jobs.values())


def test_an_idle_realm_gets_a_worker_of_its_own_when_busy_realms_outnumber_the_workers() -> None:
    synced, workers = _idle_realm_synced_behind(5, workers=2, max_workers=10)
    assert synced
    # One per busy realm (the per-realm cap is 1 here) and the idle one; two claims racing may
    # add one more, but the pool never runs up to its cap.
    assert 6 <= workers <= 7


def test_no_worker_is_added_while_one_is_free() -> None:
    # One busy realm holds all but one worker (the one kept back): that one serves the idle realm.
    synced, workers = _idle_realm_synced_behind(1, workers=3, max_workers=10, blocked_calls=2)
    assert synced
    assert workers == 3


def test_at_the_cap_the_idle_realm_waits_for_a_busy_realms_call() -> None:
    # The same with no room to grow: the guarantee stops at SYNC_MAX_WORKERS (documented).
    synced, _ = _idle_realm_synced_behind(3, workers=2, max_workers=3)
    assert not synced
