"""Retry schedule: pure functions of the attempt number and the kind of failure."""

from __future__ import annotations

import random
from dataclasses import dataclass

from classsync.domain import QboError, QboThrottled


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to wait before the next attempt, and when to stop."""

    base_seconds: float = 1.0
    max_seconds: float = 300.0
    # QBO asks for a 60 s wait after a 429 when it sends no Retry-After (qbo-reference.md §4).
    throttle_seconds: float = 60.0
    max_attempts: int = 20

    def delay(self, attempt: int, error: QboError, rng: random.Random | None = None) -> float:
        """Seconds before attempt ``attempt + 1`` (``attempt`` counts from 1).

        Throttling honours Retry-After when QBO sent one; everything else is exponential with
        full jitter, capped (so replicas that failed together do not retry together).
        """
        if isinstance(error, QboThrottled):
            if error.retry_after is not None:
                return max(0.0, error.retry_after)
            return self.throttle_seconds
        ceiling = min(self.max_seconds, self.base_seconds * (2 ** max(0, attempt - 1)))
        return (rng or random).uniform(ceiling / 2, ceiling)

    def exhausted(self, attempts: int) -> bool:
        """True when ``attempts`` failed attempts are all we allow."""
        return attempts >= self.max_attempts
