"""Replicas divide a realm's QBO limits exactly: the shares add up to the totals, never more."""

import pytest

from classsync.sync.limiter import RateLimiter, replica_share

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("replicas", [1, 3, 10, 11, 25])
def test_in_flight_slots_add_up_to_the_realm_limit(replicas: int) -> None:
    shares = [replica_share(10, 500, replicas, rank) for rank in range(replicas)]
    in_flight = [slots for slots, _ in shares]
    per_minute = [rate for _, rate in shares]
    assert sum(in_flight) == 10
    assert sum(per_minute) == 500
    assert all(slots >= 0 for slots in in_flight)
    assert max(in_flight) - min(in_flight) <= 1  # as even as whole slots allow
    # A replica without a slot gets no request budget either: it makes no calls.
    assert all(rate == 0 for slots, rate in shares if slots == 0)
    assert all(rate > 0 for slots, rate in shares if slots > 0)


def test_three_replicas_take_four_three_three() -> None:
    assert [replica_share(10, 500, 3, rank) for rank in range(3)] == [
        (4, 167),
        (3, 167),
        (3, 166),
    ]


def test_beyond_ten_replicas_the_newest_wait_without_a_slot() -> None:
    assert [replica_share(10, 500, 11, rank)[0] for rank in range(11)] == [1] * 10 + [0]
    assert replica_share(10, 500, 25, 24) == (0, 0)


def test_a_limiter_without_a_share_says_so_and_gets_it_back_when_replicas_leave() -> None:
    limiter = RateLimiter(max_in_flight=10, per_minute=500)
    limiter.set_replicas(11, rank=10)
    assert limiter.share == (0, 0)
    assert not limiter.has_share
    limiter.set_replicas(10, rank=9)  # one replica ahead of it left
    assert limiter.share == (1, 50)
    assert limiter.has_share


def test_a_rank_out_of_range_is_clamped_to_the_last_seat() -> None:
    limiter = RateLimiter(max_in_flight=10, per_minute=500)
    limiter.set_replicas(2, rank=5)
    assert limiter.share == (5, 250)
