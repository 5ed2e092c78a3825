"""The system clock: the one implementation of ports.Clock outside tests."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    """Naive UTC wall-clock time, as the store's timestamp columns hold it."""

    def now(self) -> datetime:
        """The current time."""
        return datetime.now(UTC).replace(tzinfo=None)
