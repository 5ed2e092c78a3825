"""In-process notice board: the engine posts settled jobs, waiting calls pick theirs up."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping

from classsync.sync.ports import JobState

# Settled states kept for a call that subscribes after its job was handed to a worker (the worker
# may settle it first); bounded, so memory does not grow with traffic.
_RECENT = 4096


class SettledBoard:
    """Wakes waiters as soon as a job of this process settles (other replicas are polled)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._waiters: dict[int, tuple[set[str], dict[str, JobState]]] = {}
        self._next = 0
        self._recent: OrderedDict[str, JobState] = OrderedDict()

    def subscribe(self, class_ids: Iterable[str], since: Mapping[str, int] | None = None) -> int:
        """Start collecting states for ``class_ids``; returns a ticket for wait()/unsubscribe().

        With ``since`` (class id -> generation stored), a state posted shortly before, of that
        generation or a newer one, is collected at once.
        """
        with self._condition:
            self._next += 1
            found: dict[str, JobState] = {}
            for class_id, generation in (since or {}).items():
                state = self._recent.get(class_id)
                if state is not None and state.generation >= generation:
                    found[class_id] = state
            self._waiters[self._next] = (set(class_ids), found)
            return self._next

    def unsubscribe(self, ticket: int) -> None:
        """Stop collecting for ``ticket``."""
        with self._condition:
            self._waiters.pop(ticket, None)

    def post(self, states: Iterable[JobState]) -> None:
        """Publish jobs that reached SYNCED or FAILED."""
        states = list(states)
        with self._condition:
            for state in states:
                self._recent[state.class_id] = state
                self._recent.move_to_end(state.class_id)
            while len(self._recent) > _RECENT:
                self._recent.popitem(last=False)
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
