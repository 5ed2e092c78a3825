"""Replica registry: live processes split each realm's QBO budget between them."""

from datetime import UTC, datetime, timedelta

import pytest

from classsync.store.database import make_engine, make_session_factory
from classsync.store.replicas import ReplicaRegistry
from classsync.sync.limiter import RateLimiter
from classsync.sync.replicas import ReplicaHeartbeat

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
