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


BUSY_REALMS = 5
BUSY_BACKLOG = 90  # three batches a realm
BUSY_SLOW_MS = 3000


def test_more_busy_realms_than_workers_still_leave_an_idle_realm_its_own_worker(
    service_factory: Any, fresh_sandbox: Any
) -> None:
    idle = fresh_sandbox.admin.create_realm()
    # Two base workers and five busy realms: a fixed pool would have both workers inside busy
    # realms' 3 s calls when the one-Class call arrives. The pool may grow (SYNC_MAX_WORKERS).
    service: Service = service_factory(
        sandbox_=fresh_sandbox, realm_=idle, sync_workers=2, sync_max_workers=20
    )
    busy = [fresh_sandbox.admin.create_realm() for _ in range(BUSY_REALMS)]
    busy_ids = [realm["realm_id"] for realm in busy]
    for realm in busy:
        add_realm(service.settings, realm["realm_id"], realm["refresh_token"])
    fresh_sandbox.admin.set_faults(latency_ms=BUSY_SLOW_MS, fault_realms=busy_ids)
    for n, realm_id in enumerate(busy_ids):
        backlog = [klass(f"Backlog {n}-{i:03d}") for i in range(BUSY_BACKLOG)]
        [stored] = service.send(
            backlog, metadata=[(REALM_KEY, realm_id), ("x-classsync-wait-seconds", "0")]
        )
        assert len(stored.results) == BUSY_BACKLOG

    def busy_in_flight() -> int:
        realms = fresh_sandbox.admin.counters()["realms"]
        return sum(1 for r in busy_ids if realms.get(r, {}).get("in_flight", 0) >= 1)

    # More busy realms inside a QBO call at once than there are base workers: the pool grew.
    wait_for(
        lambda: busy_in_flight() == BUSY_REALMS,
        timeout=15,
        what="a QBO call in flight in every busy realm",
    )
    for attempt in range(3):
        started = time.monotonic()
        [reply] = service.send([klass(f"Urgent {attempt}")])
        elapsed = time.monotonic() - started
        assert reply.message == SUCCESS_MESSAGE
        # The idle realm answers at once. Waiting for a busy realm's call to end would take up
        # to 3 s; 1.5 s leaves room for a loaded machine and still tells the two apart.
        assert elapsed < BUSY_SLOW_MS / 2000, f"one-Class call {attempt} took {elapsed:.2f} s"
    pending = [j for j in service.jobs() if j.realm_id in busy_ids and j.status != "SYNCED"]
    assert pending, "the backlogs were already done: the test proved nothing"
