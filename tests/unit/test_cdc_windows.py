"""CDC windowing and the high-water mark (sync.pull) with an in-memory QBO and store."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from classsync.domain import ChangePage, RemoteClass
from classsync.sync.conflicts import ConflictCounter
from classsync.sync.limiter import RateLimiter
from classsync.sync.pull import CdcPoller, after_page, first_window
from classsync.sync.remote_changes import RemoteChangeApplier
from tests.fakes.remote import FakeFeed, FakeRemoteUow, RemoteWorld, qbo_class

pytestmark = pytest.mark.unit

REALM = "realm-1"
NOW = datetime(2026, 12, 1, 12, 0, 0, 500000)
LOOKBACK = timedelta(days=30)


def poller(feed: FakeFeed, world: RemoteWorld, *, cap: int = 1000, page: int = 1000) -> CdcPoller:
    applier = RemoteChangeApplier(
        lambda: FakeRemoteUow(world), ConflictCounter(), clock=lambda: NOW
    )
    return CdcPoller(
        feed,
        applier,
        lambda: FakeRemoteUow(world),
        RateLimiter(max_in_flight=10, per_minute=100_000),
        lambda: [REALM],
        interval_seconds=60,
        max_objects=cap,
        page_size=page,
        clock=lambda: NOW,
    )


def test_no_mark_or_one_past_the_lookback_means_a_full_read() -> None:
    assert first_window(None, NOW, lookback=LOOKBACK).changed_since is None
    assert first_window(NOW - timedelta(days=31), NOW, lookback=LOOKBACK).changed_since is None
    # Within a day of QBO's limit: read in full rather than risk a refused poll.
    assert (
        first_window(NOW - timedelta(days=29, hours=12), NOW, lookback=LOOKBACK).changed_since
        is None
    )
    recent = NOW - timedelta(minutes=5)
    assert first_window(recent, NOW, lookback=LOOKBACK).changed_since == recent.replace(
        microsecond=0
    )


def test_a_short_answer_moves_the_mark_to_qbos_answer_time() -> None:
    page = ChangePage([RemoteClass(qbo_class("1", "A"), NOW - timedelta(seconds=3))], NOW)
    assert after_page(NOW - timedelta(minutes=1), page, max_objects=2) == (NOW, False)


def test_a_full_answer_moves_the_mark_to_the_newest_change_received() -> None:
    newest = NOW - timedelta(seconds=10)
    page = ChangePage(
        [
            RemoteClass(qbo_class("1", "A"), newest - timedelta(seconds=5)),
            RemoteClass(qbo_class("2", "B"), newest),
        ],
        NOW,
    )
    assert after_page(NOW - timedelta(minutes=1), page, max_objects=2) == (newest, True)


def test_a_backlog_over_the_cap_is_read_in_windows_with_nothing_lost() -> None:
    feed, world = FakeFeed(NOW, cap=10), RemoteWorld(marks={REALM: NOW - timedelta(hours=1)})
    start = NOW - timedelta(minutes=50)
    for n in range(35):  # 35 changes, 3 per second: several capped answers
        feed.add(qbo_class(str(n + 1), f"C{n}", 1), start + timedelta(seconds=n // 3))
    applied = poller(feed, world, cap=10).poll(REALM)
    assert applied == 35
    assert {c.remote.id for c in world.applied} == {str(n + 1) for n in range(35)}
    assert len(feed.cdc_calls) >= 4
    assert feed.cdc_calls == sorted(feed.cdc_calls)
    assert world.marks[REALM] == NOW  # the last, short answer's time
    assert feed.query_calls == []


def test_the_mark_is_committed_with_the_changes_it_covers() -> None:
    feed, world = FakeFeed(NOW, cap=10), RemoteWorld(marks={REALM: NOW - timedelta(hours=1)})
    for n in range(12):
        feed.add(qbo_class(str(n + 1), f"C{n}", 1), NOW - timedelta(minutes=30, seconds=-n))
    poller(feed, world, cap=10).poll(REALM)
    first_ids, first_mark = world.commits[0]
    assert len(first_ids) == 10
    assert first_mark == NOW - timedelta(minutes=30, seconds=-9)  # newest of the first answer


def test_more_than_the_cap_in_one_second_falls_back_to_a_full_read() -> None:
    feed, world = FakeFeed(NOW, cap=5), RemoteWorld(marks={REALM: NOW - timedelta(hours=1)})
    same_second = NOW - timedelta(minutes=10)
    for n in range(8):
        feed.add(qbo_class(str(n + 1), f"C{n}", 1), same_second)
    applied = poller(feed, world, cap=5, page=3).poll(REALM)
    assert applied == 8
    assert feed.query_calls == [1, 4, 7]
    assert world.marks[REALM] == NOW


def test_no_mark_reads_everything_by_pages() -> None:
    feed, world = FakeFeed(NOW), RemoteWorld()
    for n in range(7):
        feed.add(qbo_class(str(n + 1), f"C{n}", 2), NOW - timedelta(days=90))
    assert poller(feed, world, page=3).poll(REALM) == 7
    assert feed.query_calls == [1, 4, 7]
    assert feed.cdc_calls == []
    assert world.marks[REALM] == NOW


def test_a_failed_poll_leaves_the_mark_where_it_was() -> None:
    mark = NOW - timedelta(hours=1)
    feed, world = FakeFeed(NOW), RemoteWorld(marks={REALM: mark})
    feed.add(qbo_class("1", "A", 1), NOW - timedelta(minutes=1))
    feed.fail = True
    with pytest.raises(ConnectionError):
        poller(feed, world).poll(REALM)
    assert world.marks[REALM] == mark
    assert world.applied == []
