"""FakeClock: the one fake clock of the test suite (wall clock and monotonic time in step)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class FakeClock:
    """Time that moves only when told: wall clock and monotonic seconds advance together.

    ``now()`` is the ports.Clock (naive UTC), ``utc()`` the timezone-aware form (token manager),
    ``monotonic()``/``sleep()`` what the rate limiter takes. ``sleep`` advances time at once and
    records the pause in ``slept``.
    """

    def __init__(self, start: datetime | None = None, monotonic_start: float = 1000.0) -> None:
        self._wall = (start or datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)).astimezone(UTC)
        self._monotonic = monotonic_start
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """Naive UTC, as the store holds it."""
        return self.utc().replace(tzinfo=None)

    def utc(self) -> datetime:
        """Timezone-aware UTC."""
        with self._lock:
            return self._wall

    def monotonic(self) -> float:
        """Seconds on a clock that only moves forward."""
        with self._lock:
            return self._monotonic

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        with self._lock:
            self._wall += timedelta(seconds=seconds)
            self._monotonic += seconds

    def sleep(self, seconds: float) -> None:
        """Pass ``seconds`` at once (and remember that someone waited)."""
        self.slept.append(seconds)
        self.advance(seconds)
