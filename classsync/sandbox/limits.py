"""Per-realm limits: requests in flight, requests per window, batch requests per window."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from classsync.sandbox.config import SandboxConfig


@dataclass(slots=True)
class _RealmUsage:
    in_flight: int = 0
    peak_in_flight: int = 0
    recent: deque[float] = field(default_factory=deque)  # admitted requests, monotonic times
    recent_batches: deque[float] = field(default_factory=deque)


def _trim(times: deque[float], horizon: float) -> None:
    while times and times[0] <= horizon:
        times.popleft()


def _count_since(times: deque[float], horizon: float) -> int:
    # Newest entries are at the right; walk back only over the last second.
    count = 0
    for stamp in reversed(times):
        if stamp <= horizon:
            break
        count += 1
    return count


class Limiter:
    """QBO's throttles (docs/qbo.md, "Limits and throttling"), per realm. Event-loop only: no locks."""

    def __init__(self) -> None:
        self._usage: dict[str, _RealmUsage] = {}

    def _get(self, realm_id: str) -> _RealmUsage:
        usage = self._usage.get(realm_id)
        if usage is None:
            usage = self._usage[realm_id] = _RealmUsage()
        return usage

    def admit(self, realm_id: str, config: SandboxConfig, *, batch: bool) -> str | None:
        """Record one request if the realm may make it; else say which limit it hit."""
        usage = self._get(realm_id)
        if config.limits_enabled:
            now = time.monotonic()
            _trim(usage.recent, now - config.rate_window)
            _trim(usage.recent_batches, now - config.rate_window)
            if config.max_in_flight and usage.in_flight >= config.max_in_flight:
                return f"more than {config.max_in_flight} requests in flight"
            if config.requests_per_minute and len(usage.recent) >= config.requests_per_minute:
                return f"more than {config.requests_per_minute} requests per window"
            if (
                config.requests_per_second
                and _count_since(usage.recent, now - 1.0) >= config.requests_per_second
            ):
                return f"more than {config.requests_per_second} requests per second"
            if (
                batch
                and config.batch_requests_per_minute
                and len(usage.recent_batches) >= config.batch_requests_per_minute
            ):
                return f"more than {config.batch_requests_per_minute} batch requests per window"
            usage.recent.append(now)
            if batch:
                usage.recent_batches.append(now)
        return None

    def enter(self, realm_id: str) -> None:
        """A request of this realm starts being handled."""
        usage = self._get(realm_id)
        usage.in_flight += 1
        usage.peak_in_flight = max(usage.peak_in_flight, usage.in_flight)

    def leave(self, realm_id: str) -> None:
        """A request of this realm is answered (or dropped)."""
        self._get(realm_id).in_flight -= 1

    def peak(self, realm_id: str) -> int:
        """Most requests this realm had in flight at once since the last reset."""
        return self._get(realm_id).peak_in_flight

    def in_flight(self, realm_id: str) -> int:
        """Requests of this realm being handled now."""
        return self._get(realm_id).in_flight

    def reset(self) -> None:
        """Forget all windows and peaks (in-flight counts of running requests stay correct)."""
        for usage in self._usage.values():
            usage.recent.clear()
            usage.recent_batches.clear()
            usage.peak_in_flight = usage.in_flight
