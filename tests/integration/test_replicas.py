"""Replica registry: live processes split each realm's QBO budget between them."""

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from classsync.domain import ClassInput, ClassWrite, QboClass, QboError, ValidClass, validate
from classsync.store.database import make_engine, make_session_factory
from classsync.store.replicas import ReplicaRegistry
from classsync.store.unit_of_work import SqlAlchemyUnitOfWork
from classsync.sync.engine import SyncEngine
from classsync.sync.limiter import RateLimiter
from classsync.sync.replicas import ReplicaHeartbeat
from classsync.sync.retry_policy import RetryPolicy
from classsync.sync.settled import SettledBoard

pytestmark = pytest.mark.integration


def test_each_replica_takes_its_share_and_the_dead_give_theirs_back(database_url: str) -> None:
    engine = make_engine(database_url)
    registry = ReplicaRegistry(make_session_factory(engine), ttl=timedelta(seconds=15))
    now = datetime.now(UTC).replace(tzinfo=None)
    clock = {"now": now}
    limiters = {name: RateLimiter(max_in_flight=10, per_minute=500) for name in ("a", "b")}
    beats = {
        name: ReplicaHeartbeat(registry, limiter, name, interval=60, clock=lambda: clock["now"])
        for name, limiter in limiters.items()
    }
    beats["a"].beat()
    assert limiters["a"].replicas == 1
    beats["b"].beat()
    beats["a"].beat()
    assert limiters["a"].replicas == limiters["b"].replicas == 2
    # "b" dies without leaving: once its heartbeat is older than the TTL, "a" takes it all back.
    clock["now"] = now + timedelta(seconds=20)
    beats["a"].beat()
    assert limiters["a"].replicas == 1
    # A graceful stop leaves at once.
    beats["b"].beat()
    beats["b"].stop()
    beats["a"].beat()
    assert limiters["a"].replicas == 1
    engine.dispose()


def test_more_replicas_than_slots_share_exactly_ten_and_the_newest_wait(database_url: str) -> None:
    engine = make_engine(database_url)
    registry = ReplicaRegistry(make_session_factory(engine), ttl=timedelta(seconds=15))
    start = datetime.now(UTC).replace(tzinfo=None)
    clock = {"now": start}
    names = [f"replica-{index:02d}" for index in range(12)]
    limiters = {name: RateLimiter(max_in_flight=10, per_minute=500) for name in names}
    beats = {
        name: ReplicaHeartbeat(
            registry, limiters[name], name, interval=60, clock=lambda: clock["now"]
        )
        for name in names
    }
    for offset, name in enumerate(names):  # they start one after the other
        clock["now"] = start + timedelta(milliseconds=offset)
        beats[name].beat()
    for name in names:  # each sees all twelve at its next beat
        beats[name].beat()
    shares = {name: limiters[name].share for name in names}
    assert sum(slots for slots, _ in shares.values()) == 10
    assert sum(rate for _, rate in shares.values()) == 500
    assert [name for name in names if not limiters[name].has_share] == names[10:]
    # The two oldest stop: the two that waited pick up at their next beat, still 10 in all.
    beats[names[0]].stop()
    beats[names[1]].stop()
    for name in names[2:]:
        beats[name].beat()
    assert all(limiters[name].share == (1, 50) for name in names[2:])
    engine.dispose()


class _RecordingGateway:
    """A QBO that creates every Class it is asked to and remembers the calls."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def create(self, realm_id: str, write: ClassWrite) -> QboClass:
        self.created.append(write.name)
        return QboClass(str(len(self.created)), "0", write.name, write.name, write.active)

    def update(self, realm_id: str, write: ClassWrite) -> QboClass:
        raise AssertionError("no updates in this test")

    def read(self, realm_id: str, qbo_id: str) -> QboClass:
        raise AssertionError("no reads in this test")

    def find_by_name(self, realm_id: str, fully_qualified_name: str) -> QboClass | None:
        return None

    def batch_write(self, realm_id: str, writes: Sequence[ClassWrite]) -> list[QboClass | QboError]:
        raise AssertionError("no batches in this test")


def test_a_replica_without_a_slot_claims_nothing_until_one_frees_up(database_url: str) -> None:
    engine = make_engine(database_url)
    session_factory = make_session_factory(engine)
    limiter = RateLimiter(max_in_flight=10, per_minute=500)
    limiter.set_replicas(11, rank=10)  # ten older replicas hold every slot
    gateway = _RecordingGateway()

    def uow() -> SqlAlchemyUnitOfWork:
        return SqlAlchemyUnitOfWork(session_factory)

    sync = SyncEngine(
        uow, gateway, limiter, RetryPolicy(), SettledBoard(), workers=2, poll_seconds=0.05
    )
    valid = validate(ClassInput(name="Waiting", full_name="Waiting"))
    assert isinstance(valid, ValidClass)
    with uow() as work:
        work.classes.save_batch([valid], "realm-1", datetime.now(UTC).replace(tzinfo=None))
        work.commit()
    sync.start()
    try:
        time.sleep(0.5)  # ten polls of each worker: none may claim the job
        with uow() as work:
            assert work.jobs.counts() == {"PENDING": 1}
        assert gateway.created == []
        limiter.set_replicas(10, rank=9)  # a replica ahead of it left
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and gateway.created == []:
            time.sleep(0.05)
        assert gateway.created == ["Waiting"]
    finally:
        sync.stop(timeout=5)
        engine.dispose()
