"""Batch requests are paced by QBO's batch budget too (40 per 500 requests), on a fake clock."""

import itertools

import pytest

from classsync.sync.limiter import RateLimiter
from tests.fakes import FakeClock

pytestmark = pytest.mark.unit


def test_batches_are_spaced_by_the_batch_budget_not_the_request_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        max_in_flight=10, per_minute=500, clock=clock.monotonic, sleep=clock.sleep
    )
    starts = []
    for _ in range(4):
        with limiter.call("realm", batch=True):
            starts.append(clock.monotonic())
    # 500 requests/min allow 40 batches/min: one every 1.5 s, not one every 0.12 s.
    assert [round(b - a, 6) for a, b in itertools.pairwise(starts)] == [1.5, 1.5, 1.5]


def test_no_minute_holds_more_batches_than_the_budget_at_a_scaled_ceiling() -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        max_in_flight=10, per_minute=6000, clock=clock.monotonic, sleep=clock.sleep
    )
    starts = []
    for _ in range(1000):
        with limiter.call("realm", batch=True):
            starts.append(clock.monotonic())
    for i, start in enumerate(starts):
        assert len([s for s in starts[i:] if s < start + 60.0]) <= 480


def test_single_calls_are_not_slowed_by_batches() -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        max_in_flight=10, per_minute=600, clock=clock.monotonic, sleep=clock.sleep
    )
    with limiter.call("realm", batch=True):
        pass
    began = clock.monotonic()
    with limiter.call("realm"):
        pass
    assert clock.monotonic() - began == pytest.approx(0.1)
