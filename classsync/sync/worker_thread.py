"""A background loop's thread: start, wake, stop with a bounded wait (shared by the sync loops)."""

from __future__ import annotations

import threading
from collections.abc import Callable


class WorkerThread:
    """A named daemon thread running ``body`` until stopped.

    ``body`` is the owner's loop: it checks ``stopping`` and waits between rounds with
    ``wait_for_wake`` (cut short by ``wake`` and by ``stop``) or ``sleep`` (cut short only by
    ``stop``, so a failing loop is not spun by wakes). A wake that arrives while the body is busy
    is kept: the next ``wait_for_wake`` returns at once.
    """

    def __init__(self, name: str, body: Callable[[], None]) -> None:
        self._name = name
        self._body = body
        self._stopping = threading.Event()
        self._woken = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopping(self) -> bool:
        """True once ``stop`` was called: the body should return."""
        return self._stopping.is_set()

    def start(self) -> None:
        """Start the thread (again, after a stop)."""
        self._stopping.clear()
        self._thread = threading.Thread(target=self._body, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Ask the body to return and wait for it at most ``timeout`` seconds."""
        self._stopping.set()
        self._woken.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        """Cut the body's current (or next) ``wait_for_wake`` short."""
        self._woken.set()

    def wait_for_wake(self, seconds: float) -> None:
        """Wait until woken, stopped or ``seconds`` passed; the wake is used up."""
        self._woken.wait(seconds)
        self._woken.clear()

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` unless stopped first; True when stopping."""
        return self._stopping.wait(seconds)
