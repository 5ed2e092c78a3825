"""In-memory stand-ins for the sync layer's ports (store, QBO, clock), for tests without I/O.

They implement the protocols of ``classsync.sync.ports`` with the behaviour the engine relies on
(leases, generations, attempts, SyncTokens, duplicate names, requestid), not a simplification of
it: a test that passes against them exercises the engine's real decisions.
"""

from __future__ import annotations

from tests.fakes.clock import FakeClock
from tests.fakes.jobs import FakeJobStore
from tests.fakes.qbo import AnswerThenRaise, Effect, FakeCall, FakeQboGateway
from tests.fakes.store import FakeClassRow, FakeClassStore, FakeDatabase, FakeJobRow, FakeUnitOfWork

__all__ = [
    "AnswerThenRaise",
    "Effect",
    "FakeCall",
    "FakeClassRow",
    "FakeClassStore",
    "FakeClock",
    "FakeDatabase",
    "FakeJobRow",
    "FakeJobStore",
    "FakeQboGateway",
    "FakeUnitOfWork",
]
