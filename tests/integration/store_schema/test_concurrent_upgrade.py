"""Service processes starting together may all run upgrade(): exactly one migrates, none fails."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest

from classsync.store.migrate import check, current, head, upgrade

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_PROCESSES = 3


def test_parallel_upgrades_serialise(empty_url: str) -> None:
    """Separate processes upgrading one empty database all succeed and leave it at head."""
    # Processes, not threads: Alembic's `context` is process-global.
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=_PROCESSES, mp_context=spawn) as pool:
        results = list(pool.map(upgrade, [empty_url] * _PROCESSES))
    assert results == [None] * _PROCESSES
    assert current(empty_url) == head()
    check(empty_url)
