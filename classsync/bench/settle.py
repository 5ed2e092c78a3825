"""Between two bench scenarios: let PostgreSQL and the machine go quiet before the next timing.

A scenario that writes a lot (ingest stores 200,000 rows) can leave PostgreSQL flushing dirty
buffers, and the machine busy, when the next one starts timing. So the bench asks for a
checkpoint and waits (bounded) until the CPUs are mostly idle. It makes runs comparable; it did
not explain why sync-scaled measures lower inside a full run than alone (docs/performance.md)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from classsync.bench.database import admin_engine

_IDLE_SHARE = 0.8  # "quiet": at least this share of CPU time idle over one sample
_QUIET_SAMPLES = 2  # ...for this many one-second samples in a row
_STAT = Path("/proc/stat")


def settle(admin_url: str, *, max_wait_s: float) -> float:
    """CHECKPOINT, then wait until the machine is quiet or ``max_wait_s`` passed; seconds waited."""
    began = time.monotonic()
    # CHECKPOINT needs superuser or pg_checkpoint: a bench without that right still runs.
    with contextlib.suppress(SQLAlchemyError):
        engine = admin_engine(admin_url)
        with engine.connect() as conn:
            conn.execute(text("CHECKPOINT"))
        engine.dispose()
    quiet = 0
    while quiet < _QUIET_SAMPLES and time.monotonic() - began < max_wait_s:
        quiet = quiet + 1 if _idle_share(1.0) >= _IDLE_SHARE else 0
    return round(time.monotonic() - began, 1)


def _idle_share(seconds: float) -> float:
    """Share of CPU time spent idle (idle + iowait) over ``seconds``; 1.0 without /proc."""
    if not _STAT.exists():
        time.sleep(seconds)
        return 1.0
    before = _cpu_times()
    time.sleep(seconds)
    after = _cpu_times()
    spent = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(spent)
    return (spent[3] + spent[4]) / total if total else 1.0


def _cpu_times() -> list[int]:
    first = _STAT.read_text().splitlines()[0].split()  # "cpu  user nice system idle iowait ..."
    return [int(value) for value in first[1:8]]
