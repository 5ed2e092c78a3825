"""QBO's throttles per realm: requests in flight, per-minute budget, 429 bodies (JSON and XML)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import requests
from quickbooks.exceptions import QuickbooksException, ValidationException
from quickbooks.objects.trackingclass import Class

from classsync.sandbox import RunningSandbox
from tests.fixtures.sandbox import make_qbo_client

pytestmark = pytest.mark.integration


def _query(running: RunningSandbox, realm: dict) -> requests.Response:
    return requests.get(
        f"{running.api_base_url}/company/{realm['realm_id']}/query",
        params={"query": "select * from Class", "minorversion": "75"},
        headers={"Authorization": f"Bearer {realm['access_token']}", "Accept": "application/json"},
        timeout=10,
    )


def test_eleventh_concurrent_request_gets_429(
    sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    running = sandbox_factory(latency_ms=800)
    realm = running.admin.create_realm()
    clients = [make_qbo_client(running, realm) for _ in range(11)]
    start = threading.Barrier(11)
    outcomes: list[str] = []

    def call(qb: object) -> None:
        start.wait()
        try:
            Class.all(qb=qb)
            outcomes.append("ok")
        except QuickbooksException as error:
            outcomes.append("429" if "ThrottleExceeded" in error.message else error.message)

    threads = [threading.Thread(target=call, args=(qb,)) for qb in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["429"] + ["ok"] * 10
    realm_counters = running.admin.counters()["realms"][realm["realm_id"]]
    assert realm_counters["max_in_flight"] == 10
    assert realm_counters["throttled"] == 1


def test_per_minute_budget_then_json_throttle_fault(
    sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    running = sandbox_factory(requests_per_minute=20, throttle_body="json")
    qb = make_qbo_client(running)
    for _ in range(20):
        Class.all(qb=qb)
    with pytest.raises(ValidationException) as caught:
        Class.all(qb=qb)  # python-quickbooks maps a JSON 3001 Fault to ValidationException
    assert caught.value.error_code == 3001
    assert caught.value.message == "message=ThrottleExceeded; errorCode=003001; statusCode=429"
    assert running.admin.counters()["throttled"] == 1


def test_budget_is_per_realm_and_window_recovers(
    sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    running = sandbox_factory(requests_per_minute=3, rate_window=1.0, retry_after=60)
    busy, calm = running.admin.create_realm(), running.admin.create_realm()
    assert [_query(running, busy).status_code for _ in range(4)] == [200, 200, 200, 429]
    throttled = _query(running, busy)
    assert throttled.headers["Content-Type"].startswith("application/xml")
    assert '<Error code="3001">' in throttled.text
    assert throttled.headers["Retry-After"] == "60"
    assert _query(running, calm).status_code == 200
    time.sleep(1.1)
    assert _query(running, busy).status_code == 200


def test_limits_can_be_changed_at_runtime(fresh_sandbox: RunningSandbox) -> None:
    realm = fresh_sandbox.admin.create_realm()
    fresh_sandbox.admin.update_config(requests_per_minute=1)
    assert [_query(fresh_sandbox, realm).status_code for _ in range(2)] == [200, 429]
    fresh_sandbox.admin.update_config(limits_enabled=False)
    assert _query(fresh_sandbox, realm).status_code == 200
