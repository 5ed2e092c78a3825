"""In-process notice board: the engine posts settled jobs, waiting calls pick theirs up."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from classsync.sync.ports import JobState


class SettledBoard:
    """Wakes waiters as soon as a job of this process settles (other replicas are polled)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._waiters: dict[int, tuple[set[str], dict[str, JobState]]] = {}
        self._next = 0

    def subscribe(self, class_ids: Iterable[str]) -> int:
        """Start collecting states for ``class_ids``; returns a ticket for wait()/unsubscribe()."""
        with self._condition:
            self._next += 1
            self._waiters[self._next] = (set(class_ids), {})
            return self._next

    def unsubscribe(self, ticket: int) -> None:
        """Stop collecting for ``ticket``."""
        with self._condition:
            self._waiters.pop(ticket, None)

    def post(self, states: Iterable[JobState]) -> None:
        """Publish jobs that reached SYNCED or FAILED."""
        states = list(states)
        with self._condition:
            for wanted, found in self._waiters.values():
                for state in states:
                    if state.class_id in wanted:
                        found[state.class_id] = state
            self._condition.notify_all()

    def take(self, ticket: int, timeout: float) -> dict[str, JobState]:
        """Wait up to ``timeout`` for news, then hand over (and forget) what arrived."""
        with self._condition:
            entry = self._waiters.get(ticket)
            if entry is None:
                return {}
            if not entry[1]:
                self._condition.wait(timeout)
            found = dict(entry[1])
            entry[1].clear()
            entry[0].difference_update(found)
            return found
