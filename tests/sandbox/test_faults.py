"""Faults on demand via the admin API: outages, 5xx, dropped connections, 429 windows, latency."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import requests
from intuitlib.exceptions import AuthClientError
from quickbooks import QuickBooks
from quickbooks.exceptions import QuickbooksException, SevereException
from quickbooks.objects.trackingclass import Class

from classsync.sandbox import RunningSandbox, SandboxAdminError
from tests.fixtures.sandbox import (
    DEV_REALM_ID,
    DEV_REFRESH_TOKEN,
    make_auth_client,
    make_qbo_client,
)

pytestmark = pytest.mark.integration


def _named(name: str) -> Class:
    item = Class()
    item.Name = name
    return item


def _wait_for_window_end(sandbox: RunningSandbox, window: str) -> None:
    """Poll the admin API until the fault window (e.g. ``outage_remaining``) has closed."""
    deadline = time.monotonic() + 10
    while sandbox.admin.faults()[window] > 0:
        assert time.monotonic() < deadline, f"{window} never reached 0"
        time.sleep(0.02)


def test_outage_window_answers_503_everywhere_then_recovers(fresh_sandbox: RunningSandbox) -> None:
    qb = make_qbo_client(fresh_sandbox)
    fresh_sandbox.admin.set_faults(outage_seconds=0.6)
    with pytest.raises(QuickbooksException) as caught:
        Class.all(qb=qb)
    assert caught.value.error_code == 10000  # HTML body: "Error reading json response"
    assert "Service Unavailable" in caught.value.message
    with pytest.raises(AuthClientError) as token_error:
        make_auth_client(fresh_sandbox).refresh(refresh_token=DEV_REFRESH_TOKEN)
    assert token_error.value.status_code == 503
    assert fresh_sandbox.admin.faults()["outage_remaining"] > 0
    _wait_for_window_end(fresh_sandbox, "outage_remaining")
    assert Class.all(qb=qb) == []
    assert fresh_sandbox.admin.counters()["injected"]["outage"] == 2


def test_error_rate_injects_5xx_in_the_chosen_body(fresh_sandbox: RunningSandbox) -> None:
    qb = make_qbo_client(fresh_sandbox)
    fresh_sandbox.admin.set_faults(error_rate=1.0, error_statuses=[503], error_body="html")
    with pytest.raises(QuickbooksException) as caught:
        Class.all(qb=qb)
    assert "<html>" in caught.value.message
    fresh_sandbox.admin.set_faults(error_statuses=[500], error_body="json")
    with pytest.raises(SevereException):
        Class.all(qb=qb)
    statuses = fresh_sandbox.admin.counters()["requests"]["query"]
    assert statuses == {"503": 1, "500": 1}
    fresh_sandbox.admin.clear_faults()
    assert Class.all(qb=qb) == []


def test_dropped_connection_after_the_write_then_requestid_retry_is_deduplicated(
    fresh_sandbox: RunningSandbox,
) -> None:
    qb = make_qbo_client(fresh_sandbox)
    fresh_sandbox.admin.set_faults(drop_rate=1.0, drop_mode="after", fault_target="writes")
    assert Class.all(qb=qb) == []  # reads are not targeted
    with pytest.raises(requests.exceptions.ConnectionError):
        _named("Lost answer").save(qb=qb, request_id="retry-me")
    stored = fresh_sandbox.admin.classes(qb.company_id)
    assert [c["Name"] for c in stored] == ["Lost answer"]  # the write happened

    fresh_sandbox.admin.clear_faults()
    retried = _named("Lost answer").save(qb=qb, request_id="retry-me")
    assert retried.Id == stored[0]["Id"]
    counters = fresh_sandbox.admin.counters()
    assert counters["duplicates_prevented"] == 1
    assert counters["realms"][qb.company_id]["classes_created"] == 1
    assert counters["requests"]["class.write"]["dropped"] == 1


def test_dropped_connection_before_the_write_applies_nothing(fresh_sandbox: RunningSandbox) -> None:
    qb = make_qbo_client(fresh_sandbox)
    fresh_sandbox.admin.set_faults(drop_rate=1.0, drop_mode="before")
    with pytest.raises(requests.exceptions.ConnectionError):
        _named("Never").save(qb=qb)
    assert fresh_sandbox.admin.classes(qb.company_id) == []


def test_forced_429_window(fresh_sandbox: RunningSandbox) -> None:
    qb = make_qbo_client(fresh_sandbox)
    fresh_sandbox.admin.set_faults(throttle_seconds=0.5)
    with pytest.raises(QuickbooksException) as caught:
        Class.all(qb=qb)
    assert "ThrottleExceeded" in caught.value.message
    _wait_for_window_end(fresh_sandbox, "throttle_remaining")
    assert Class.all(qb=qb) == []


def test_faults_can_target_one_realm(fresh_sandbox: RunningSandbox) -> None:
    hit, spared = make_qbo_client(fresh_sandbox), make_qbo_client(fresh_sandbox)
    fresh_sandbox.admin.set_faults(error_rate=1.0, fault_realms=[hit.company_id])
    with pytest.raises(QuickbooksException):
        Class.all(qb=hit)
    assert Class.all(qb=spared) == []


def test_latency_does_not_block_other_callers(fresh_sandbox: RunningSandbox) -> None:
    clients = [make_qbo_client(fresh_sandbox) for _ in range(5)]
    fresh_sandbox.admin.set_faults(latency_ms=600)
    began = time.perf_counter()
    threads = [threading.Thread(target=Class.all, kwargs={"qb": qb}) for qb in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    # Five sleeps overlapped (~0.6 s), not 3 s in a row; wide margin for a busy machine.
    assert 0.6 <= elapsed < 2.4


def test_latency_distribution_is_bounded_below(fresh_sandbox: RunningSandbox) -> None:
    qb = make_qbo_client(fresh_sandbox)
    fresh_sandbox.admin.set_faults(
        latency_ms=100, latency_distribution="uniform", latency_jitter_ms=50
    )
    timings = []
    for _ in range(3):
        began = time.perf_counter()
        Class.all(qb=qb)
        timings.append(time.perf_counter() - began)
    # uniform 100 +- 50 ms: never under 50 ms (a slow machine only adds time, hence no
    # tight upper bound).
    assert all(t >= 0.05 for t in timings), timings


def _outcomes_with_seed(sandbox_factory: Callable[..., RunningSandbox], seed: int) -> list[str]:
    """What 30 reads saw, in order, against a fresh sandbox that fails half of them at random."""
    box = sandbox_factory(seed=seed, error_rate=0.5, error_statuses=(500, 503))
    qb = make_qbo_client(box)
    outcomes = []
    for _ in range(30):
        try:
            Class.all(qb=qb)
            outcomes.append("ok")
        except QuickbooksException as error:
            outcomes.append(f"{error.error_code}:{error.message}")
    return outcomes


def test_a_seed_makes_injected_faults_reproducible(
    sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    first = _outcomes_with_seed(sandbox_factory, 11)
    assert "ok" in first
    assert len(set(first)) >= 2  # some calls failed: the faults were injected
    assert _outcomes_with_seed(sandbox_factory, 11) == first
    # Another seed gives another sequence (30 coin flips: equal by chance 1 time in 10^9).
    assert _outcomes_with_seed(sandbox_factory, 12) != first


def test_admin_reset_config_and_validation(fresh_sandbox: RunningSandbox) -> None:
    admin = fresh_sandbox.admin
    qb = make_qbo_client(fresh_sandbox, DEV_REALM_ID)
    _named("Temporary").save(qb=qb)
    config = admin.config()
    assert config["client_secret"] == "***"
    assert config["dev_refresh_token"] == "***"
    assert config["max_in_flight"] == 10
    assert config["requests_per_minute"] == 500
    with pytest.raises(SandboxAdminError):
        admin.set_faults(requests_per_minute=5)  # a limit, not a fault
    with pytest.raises(SandboxAdminError):
        admin.update_config(port=1)  # startup-only
    with pytest.raises(SandboxAdminError):
        admin.set_faults(outage_mode="sometimes")
    admin.set_faults(latency_ms=5)
    admin.reset()
    assert admin.faults()["latency_ms"] == 0
    assert admin.classes(DEV_REALM_ID) == []
    assert [r["realm_id"] for r in admin.realms()] == [DEV_REALM_ID]
    assert admin.counters()["requests_total"] == 0
    fresh = make_qbo_client(
        fresh_sandbox,
        {"realm_id": DEV_REALM_ID, "access_token": None, "refresh_token": DEV_REFRESH_TOKEN},
        use_access_token=False,
    )
    assert isinstance(fresh, QuickBooks)
    assert Class.all(qb=fresh) == []
