"""Limiter pacing, in-flight limit and pauses, on a fake clock (pure logic)."""

import itertools
import threading

import pytest

from classsync.sync.limiter import RateLimiter
from tests.fakes import FakeClock

pytestmark = pytest.mark.unit


def test_calls_are_spaced_evenly_at_the_per_minute_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        max_in_flight=10, per_minute=600, clock=clock.monotonic, sleep=clock.sleep
    )
    starts = []
    for _ in range(5):
        with limiter.call("realm"):
            starts.append(clock.monotonic())
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(starts)]
    assert gaps == [0.1, 0.1, 0.1, 0.1]


def test_no_sixty_second_window_holds_more_than_the_budget() -> None:
    clock = FakeClock()
    limiter = RateLimiter(max_in_flight=10, per_minute=30, clock=clock.monotonic, sleep=clock.sleep)
    starts = []
    for _ in range(100):
        with limiter.call("realm"):
            starts.append(clock.monotonic())
    for i, start in enumerate(starts):
        in_window = [s for s in starts[i:] if s < start + 60.0]
        assert len(in_window) <= 30


def test_a_window_keeps_room_for_requests_that_reach_qbo_a_little_late() -> None:
    clock = FakeClock()
    limiter = RateLimiter(max_in_flight=10, per_minute=30, clock=clock.monotonic, sleep=clock.sleep)
    starts = []
    for _ in range(31):
        with limiter.call("realm"):
            starts.append(clock.monotonic())
    # Paced exactly at the limit, the 31st would start one window after the first; a first
    # request delayed a few ms on its way would then still be in QBO's window.
    assert starts[30] - starts[0] >= 60.0 + 0.5


def test_realms_are_limited_independently() -> None:
    clock = FakeClock()
    limiter = RateLimiter(max_in_flight=10, per_minute=60, clock=clock.monotonic, sleep=clock.sleep)
    with limiter.call("a"):
        pass
    with limiter.call("b"):
        pass
    assert clock.slept == []


def test_pause_delays_the_next_call() -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        max_in_flight=10, per_minute=6000, clock=clock.monotonic, sleep=clock.sleep
    )
    limiter.pause("realm", 5.0)
    with limiter.call("realm"):
        assert clock.monotonic() >= 1005.0


def test_in_flight_limit_blocks_the_eleventh_call() -> None:
    limiter = RateLimiter(max_in_flight=10, per_minute=100000)
    entered = threading.Semaphore(0)
    release = threading.Event()
    eleventh_started = threading.Event()

    def hold() -> None:
        with limiter.call("realm"):
            entered.release()
            release.wait(5)

    threads = [threading.Thread(target=hold) for _ in range(10)]
    for t in threads:
        t.start()
    for _ in range(10):
        assert entered.acquire(timeout=5)

    def eleventh() -> None:
        with limiter.call("realm"):
            eleventh_started.set()

    extra = threading.Thread(target=eleventh)
    extra.start()
    assert not eleventh_started.wait(0.3)
    release.set()
    assert eleventh_started.wait(5)
    for t in [*threads, extra]:
        t.join(5)


def test_replicas_split_the_realm_budget() -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        max_in_flight=10, per_minute=600, clock=clock.monotonic, sleep=clock.sleep
    )
    limiter.set_replicas(3)
    starts = []
    for _ in range(3):
        with limiter.call("realm"):
            starts.append(clock.monotonic())
    # 600/min shared by 3 processes: this one paces at 200/min, one call every 0.3 s.
    assert [round(b - a, 6) for a, b in itertools.pairwise(starts)] == [0.3, 0.3]
    # Alone again: the whole 600/min, one call every 0.1 s (after the 0.3 s slot already given).
    limiter.set_replicas(1)
    again = []
    for _ in range(3):
        with limiter.call("realm"):
            again.append(clock.monotonic())
    assert [round(b - a, 6) for a, b in itertools.pairwise(again)] == [0.1, 0.1]


def test_a_batch_window_keeps_a_second_of_room() -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        max_in_flight=10, per_minute=500, clock=clock.monotonic, sleep=clock.sleep
    )
    starts = []
    for _ in range(41):  # QBO: 40 batch requests a minute
        with limiter.call("realm", batch=True):
            starts.append(clock.monotonic())
    assert starts[40] - starts[0] >= 60.0 + 1.0


def test_a_call_that_comes_just_after_the_window_still_keeps_the_room() -> None:
    clock = FakeClock()
    limiter = RateLimiter(max_in_flight=10, per_minute=30, clock=clock.monotonic, sleep=clock.sleep)
    starts = []
    for _ in range(30):
        with limiter.call("realm"):
            starts.append(clock.monotonic())
    # The 31st caller comes late, just past one window after the first start but inside the
    # room: the first start must still count (the bench's 429 in sync-real-batch).
    clock.advance(starts[0] + 60.1 - clock.monotonic())
    with limiter.call("realm"):
        late = clock.monotonic()
    assert late - starts[0] >= 60.0 + 0.5


def test_a_batch_that_comes_just_after_the_window_still_keeps_the_room() -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        max_in_flight=10, per_minute=500, clock=clock.monotonic, sleep=clock.sleep
    )
    starts = []
    for _ in range(40):
        with limiter.call("realm", batch=True):
            starts.append(clock.monotonic())
    clock.advance(starts[0] + 60.5 - clock.monotonic())
    assert limiter.batch_wait("realm") >= 0.5 - 1e-9
    with limiter.call("realm", batch=True):
        late = clock.monotonic()
    assert late - starts[0] >= 60.0 + 1.0
