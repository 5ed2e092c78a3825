"""Service processes starting together may all run upgrade(): all succeed, the schema is whole."""

from __future__ import annotations

import multiprocessing
import time
import traceback
from typing import Any

import pytest

from classsync.store.migrate import check, current, head, upgrade

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_PROCESSES = 3


def _upgrade_at_the_barrier(url: str, barrier: Any, results: Any) -> None:
    """Child: wait for every sibling, then upgrade; report (started, finished, error)."""
    barrier.wait(60)
    started = time.time()
    try:
        upgrade(url)
        error = None
    except Exception:  # reported to the parent, which fails the test with it
        error = traceback.format_exc()
    results.put((started, time.time(), error))


def test_parallel_upgrades_serialise(empty_url: str) -> None:
    """Processes upgrading one empty database AT THE SAME TIME all succeed and leave it at head.

    A barrier releases them together and the timings prove the upgrades overlapped, so the
    test cannot pass by the processes having run one after the other (spawn start-up is slow).
    """
    # Processes, not threads: Alembic's `context` is process-global.
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(_PROCESSES)
    results = spawn.Queue()
    children = [
        spawn.Process(target=_upgrade_at_the_barrier, args=(empty_url, barrier, results))
        for _ in range(_PROCESSES)
    ]
    for child in children:
        child.start()
    reports = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join(30)
    assert [error for _, _, error in reports] == [None] * _PROCESSES
    assert [child.exitcode for child in children] == [0] * _PROCESSES
    # Every upgrade started before the first one finished: they really ran concurrently.
    assert max(started for started, _, _ in reports) < min(finished for _, finished, _ in reports)
    assert current(empty_url) == head()
    check(empty_url)
