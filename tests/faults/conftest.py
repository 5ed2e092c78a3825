"""Fault-test wiring: the e2e server fixtures, and a terminal summary of every test's figures."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import service_factory  # noqa: F401 - re-exported fixture
from tests.faults.harness import FIGURES_FILE, SESSION_FIGURES

_COLUMNS = ("sent", "accepted", "synced", "lost", "duplicates", "recover_seconds", "wall_seconds")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the figures each fault test recorded (also in fault-figures.json)."""
    if not SESSION_FIGURES:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fault figures")
    write(f"{'fault':<44}" + "".join(f"{c.replace('_seconds', ' s'):>11}" for c in _COLUMNS))
    for entry in SESSION_FIGURES.values():
        cells = "".join(f"{entry[c]!s:>11}" for c in _COLUMNS)
        write(f"{entry['fault'][:43]:<44}{cells}")
    write(f"(details: {FIGURES_FILE.name})")


@pytest.fixture
def started_at() -> float:
    """Monotonic time at the start of the test (for wall-clock figures)."""
    import time

    return time.monotonic()
