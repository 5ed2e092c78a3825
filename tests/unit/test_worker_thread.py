"""The background-loop thread the CDC poller, the webhook worker and the heartbeat share."""

from __future__ import annotations

import threading

import pytest

from classsync.sync.worker_thread import WorkerThread

pytestmark = pytest.mark.unit

_LONG = 60.0  # a wait no test lets run out: only a wake or a stop may end it
_BOUND = 5.0  # how long a test waits for something that should happen at once


class _Loop:
    """A body that counts its rounds and waits between them as told."""

    def __init__(self, *, sleep: bool = False, gate: threading.Event | None = None) -> None:
        self.worker = WorkerThread("test-loop", self.run)
        self.rounds = 0
        self.round_started = threading.Semaphore(0)
        self.exited = threading.Event()
        self._sleep = sleep
        self._gate = gate

    def run(self) -> None:
        while not self.worker.stopping:
            self.rounds += 1
            self.round_started.release()
            if self._gate is not None and self.rounds == 1:
                self._gate.wait(_BOUND)
            if self._sleep:
                self.worker.sleep(_LONG)
            else:
                self.worker.wait_for_wake(_LONG)
        self.exited.set()


def test_a_wake_cuts_the_wait_short_and_stop_ends_the_loop() -> None:
    loop = _Loop()
    loop.worker.start()
    assert loop.round_started.acquire(timeout=_BOUND)
    loop.worker.wake()
    assert loop.round_started.acquire(timeout=_BOUND)  # the second round, long before _LONG
    loop.worker.stop(timeout=_BOUND)
    assert loop.exited.is_set()


def test_a_wake_while_the_body_is_busy_is_kept() -> None:
    gate = threading.Event()
    loop = _Loop(gate=gate)
    loop.worker.start()
    assert loop.round_started.acquire(timeout=_BOUND)
    loop.worker.wake()  # the body is still in its first round
    gate.set()
    assert loop.round_started.acquire(timeout=_BOUND)
    loop.worker.stop(timeout=_BOUND)
    assert loop.exited.is_set()


def test_sleep_ends_on_stop_and_the_loop_starts_again() -> None:
    loop = _Loop(sleep=True)
    loop.worker.start()
    assert loop.round_started.acquire(timeout=_BOUND)
    loop.worker.stop(timeout=_BOUND)
    assert loop.exited.is_set()
    assert loop.rounds == 1
    loop.exited.clear()
    loop.worker.start()  # after a stop: a fresh thread
    assert loop.round_started.acquire(timeout=_BOUND)
    loop.worker.stop(timeout=_BOUND)
    assert loop.exited.is_set()
