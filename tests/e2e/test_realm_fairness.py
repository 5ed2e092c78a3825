"""Fair sync across realms: a big backlog in one company never holds up a call to another."""

from __future__ import annotations

import time
from typing import Any

import pytest

from classsync.api.convert import SUCCESS_MESSAGE
from classsync.api.realm import REALM_KEY
from classsync.realms import add_realm
from tests.e2e.conftest import Service, klass
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

BACKLOG = 900
SLOW_MS = 1500


def test_a_one_class_call_to_an_idle_realm_does_not_wait_behind_another_realms_backlog(
    service_factory: Any, fresh_sandbox: Any
) -> None:
    idle = fresh_sandbox.admin.create_realm()
    service: Service = service_factory(sandbox_=fresh_sandbox, realm_=idle)
    busy = fresh_sandbox.admin.create_realm()
    add_realm(service.settings, busy["realm_id"], busy["refresh_token"])
    # Every QBO call of the busy company takes 1.5 s; the idle company answers at once.
    fresh_sandbox.admin.set_faults(latency_ms=SLOW_MS, fault_realms=[busy["realm_id"]])
    backlog = [klass(f"Backlog {i:04d}") for i in range(BACKLOG)]
    [stored] = service.send(
        backlog, metadata=[(REALM_KEY, busy["realm_id"]), ("x-classsync-wait-seconds", "0")]
    )
    assert len(stored.results) == BACKLOG
    # Let the workers get busy with it, so the one-Class call arrives in the thick of it.
    wait_for(
        lambda: (
            fresh_sandbox.admin.counters()["realms"].get(busy["realm_id"], {}).get("in_flight", 0)
            >= 3
        ),
        timeout=10,
        what="the busy realm's calls in flight",
    )
    started = time.monotonic()
    [reply] = service.send([klass("Urgent")])
    elapsed = time.monotonic() - started
    assert reply.message == SUCCESS_MESSAGE
    # The idle realm's own QBO latency is ~0; in the backlog's queue order the call would wait
    # for 900 Classes at 1.5 s per call (batches of 30 on 4 workers: over 10 s).
    assert elapsed < 2.0, f"the one-Class call took {elapsed:.2f} s"
    pending = [j for j in service.jobs() if j.realm_id == busy["realm_id"] and j.status != "SYNCED"]
    assert pending, "the backlog was already done: the test proved nothing"
