"""QBO misbehaves (outage, 429 storm, expiring tokens, 503 HTML, dropped connections): 0 lost, 0 dup."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import Service
from tests.faults.harness import (
    Figures,
    accepted_ids,
    audit,
    chunked,
    class_tree,
    db_engine,
    record,
    sandbox_figures,
    stream,
    wait_for,
    wait_until_settled,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Test timings are ~60x shorter than production (backoff cap 1 s instead of 60 s), so a 10 s
# outage burns as many attempts as a ten-minute one would; the attempt budget is raised to match.
_FAULT_SETTINGS: dict[str, Any] = {
    "sync_lease_seconds": 3.0,
    "sync_max_attempts": 40,
    "sync_workers": 6,
}


def _start(
    service_factory: Callable[..., Service], box: Any, **overrides: Any
) -> tuple[Service, dict[str, Any]]:
    realm = box.admin.create_realm()
    settings = {**_FAULT_SETTINGS, **overrides}
    return service_factory(sandbox_=box, realm_=realm, **settings), realm


def _finish(
    request: pytest.FixtureRequest,
    svc: Service,
    *,
    fault: str,
    sent: int,
    accepted: set[str],
    recover_seconds: float,
    started: float,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Audit, record the figures, assert 0 lost and 0 duplicate; return the sandbox figures."""
    engine = db_engine(svc.settings.database_url)
    try:
        result = audit(engine, svc.sandbox.admin, svc.realm_id, accepted)
    finally:
        engine.dispose()
    counters = sandbox_figures(svc.sandbox.admin, svc.realm_id)
    record(
        Figures(
            test=request.node.nodeid,
            fault=fault,
            sent=sent,
            accepted=len(accepted),
            synced=result.synced,
            lost=result.lost,
            duplicates=result.duplicates,
            recover_seconds=recover_seconds,
            wall_seconds=time.monotonic() - started,
            extra={**counters, **(extra or {})},
        )
    )
    assert result.problems == []
    assert result.lost == 0
    assert result.duplicates == 0
    assert result.rows == result.synced == result.sandbox_classes
    # Every class QBO holds was created once: a second create would have been a duplicate
    # (or, refused with 6240, a wasted write).
    assert counters["qbo_classes_created"] == result.sandbox_classes
    return counters


def test_outage_of_10s_in_the_middle_of_a_500_class_stream(
    request: pytest.FixtureRequest,
    service_factory: Callable[..., Service],
    sandbox_factory: Callable[..., Any],
    started_at: float,
) -> None:
    box = sandbox_factory(latency_ms=20)
    svc, _ = _start(service_factory, box)
    classes = class_tree("out", 500)
    outage: dict[str, float] = {}

    def start_outage(sent: int) -> None:
        if sent == 15:  # 150 of 500 sent: some synced, most still to come
            box.admin.set_faults(outage_seconds=10, latency_ms=20)
            outage["ends"] = time.monotonic() + 10

    replies = stream(svc.app.port, chunked(classes, 10), pause=0.05, on_sent=start_outage)
    accepted = accepted_ids(replies)
    assert len(accepted) == 500  # the outage never stops the service from storing Classes
    engine = db_engine(svc.settings.database_url)
    try:
        wait_for(
            lambda: box.admin.faults().get("outage_remaining", 0) <= 0,
            timeout=30,
            what="the outage to end",
        )
        recover = wait_until_settled(engine, expected_rows=500, timeout=60)
    finally:
        engine.dispose()
    counters = _finish(
        request,
        svc,
        fault="a. 10 s QBO outage mid-stream (500)",
        sent=500,
        accepted=accepted,
        recover_seconds=recover,
        started=started_at,
    )
    assert counters["injected"].get("outage", 0) > 0  # the outage really hit the service


def test_429_storm_and_the_10_in_flight_limit_with_50_concurrent_streams(
    request: pytest.FixtureRequest,
    service_factory: Callable[..., Service],
    sandbox_factory: Callable[..., Any],
    started_at: float,
) -> None:
    # QBO's 10-in-flight limit stays on in the sandbox; its per-minute window is shortened so
    # 500 requests/window is ~5,000/min, above what the service is allowed to send here.
    box = sandbox_factory(latency_ms=250, rate_window=6)
    svc, _ = _start(
        service_factory,
        box,
        sync_workers=20,  # more workers than slots: the limiter, not the pool, must hold at 10
        qbo_use_batch=False,  # one call per Class: many small concurrent calls
        # Pacing alone would allow 250 ms / 20 ms = 12.5 calls at once: only the in-flight
        # limit keeps it at 10.
        qbo_requests_per_minute=3000,
        qbo_rate_window_seconds=6,
        response_wait_seconds=40,
    )
    streams = 50
    per_stream = 6
    storm: dict[str, float] = {}
    replies: dict[int, Any] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(streams)

    def caller(number: int) -> None:
        classes = class_tree(f"s{number:02d}", per_stream, fanout=3)
        barrier.wait(10)
        try:
            # Default mode: each stream waits for QBO and gets one answer for all its Classes.
            [replies[number]] = stream(
                svc.app.port, chunked(classes, 2), pause=0.1, metadata=(), timeout=60
            )
        except BaseException as error:  # reported below, with the stream's number
            errors.append(error)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(streams)]
    for thread in threads:
        thread.start()
    # The storm starts once the streams are flowing and QBO is creating their Classes.
    wait_for(
        lambda: sandbox_figures(box.admin, svc.realm_id)["qbo_classes_created"] >= 10,
        timeout=30,
        what="the first Classes to reach QBO",
    )
    box.admin.set_faults(throttle_seconds=3, latency_ms=250)
    storm["ends"] = time.monotonic() + 3
    for thread in threads:
        thread.join(90)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    recover = max(0.0, time.monotonic() - storm["ends"])
    total = streams * per_stream
    # Every stream was answered ✅ once QBO had its Classes, within the caller's wait.
    assert [replies[n].message for n in range(streams)] == [
        "✅ Classes created and synced successfully"
    ] * streams
    accepted = accepted_ids(replies.values())
    counters = _finish(
        request,
        svc,
        fault="c. 429 storm + 50 streams, 10 in flight",
        sent=total,
        accepted=accepted,
        recover_seconds=recover,
        started=started_at,
    )
    forced = counters["injected"].get("throttle", 0)
    assert forced > 0  # the storm really hit
    # No 429 came from QBO's own limits: the service never had more than 10 calls in flight.
    assert counters["qbo_throttled"] == forced
    assert counters["qbo_max_in_flight"] <= 10
    assert counters["qbo_max_in_flight"] >= 8  # and the limit was actually reached for


def test_access_tokens_expiring_every_2s_during_a_long_run(
    request: pytest.FixtureRequest,
    service_factory: Callable[..., Service],
    sandbox_factory: Callable[..., Any],
    started_at: float,
) -> None:
    # A shorter rate window (500 per 6 s) lets one call per Class run at 3,000/min.
    box = sandbox_factory(latency_ms=15, access_token_ttl=2.0, rate_window=6)
    svc, _ = _start(
        service_factory,
        box,
        qbo_use_batch=False,
        qbo_requests_per_minute=3000,
        qbo_rate_window_seconds=6,
    )
    classes = class_tree("tok", 300)

    def expire_now(sent: int) -> None:
        # Besides the short lifetime, kill tokens outright now and then: the 401-then-refresh path.
        if sent % 8 == 0:
            box.admin.expire_access_tokens(svc.realm_id)

    replies = stream(svc.app.port, chunked(classes, 10), pause=0.25, on_sent=expire_now)
    accepted = accepted_ids(replies)
    engine = db_engine(svc.settings.database_url)
    try:
        recover = wait_until_settled(engine, expected_rows=300, timeout=60)
    finally:
        engine.dispose()
    counters = _finish(
        request,
        svc,
        fault="d. access tokens expire every 2 s (300)",
        sent=300,
        accepted=accepted,
        recover_seconds=recover,
        started=started_at,
    )
    # The run outlived several access tokens, each replaced by a refresh (with rotation), and
    # the forced expiries were answered 401 and recovered from.
    assert counters["qbo_token_refreshes"] >= 3
    statuses = svc.sandbox.admin.counters()["requests"]
    assert sum(by_status.get("401", 0) for by_status in statuses.values()) > 0


def test_503_html_answers_and_dropped_connections(
    request: pytest.FixtureRequest,
    service_factory: Callable[..., Service],
    sandbox_factory: Callable[..., Any],
    started_at: float,
) -> None:
    # "after" drops apply the write and never answer: the outcome is unknown, the dangerous case.
    box = sandbox_factory(
        latency_ms=10,
        error_rate=0.2,
        error_statuses=(503,),
        error_body="html",
        drop_rate=0.15,
        drop_mode="after",
        seed=7,
        rate_window=6,  # 500 per 6 s: the retries and look-ups run at 3,000/min
    )
    svc, _ = _start(service_factory, box, qbo_requests_per_minute=3000, qbo_rate_window_seconds=6)
    classes = class_tree("flaky", 300)
    replies = stream(svc.app.port, chunked(classes, 15), pause=0.05)
    accepted = accepted_ids(replies)
    engine = db_engine(svc.settings.database_url)
    try:
        settle = wait_until_settled(engine, expected_rows=300, timeout=90)
    finally:
        engine.dispose()
    counters = _finish(
        request,
        svc,
        fault="h. 503 HTML (20%) + drops after write (15%)",
        sent=300,
        accepted=accepted,
        recover_seconds=settle,
        started=started_at,
    )
    assert counters["injected"].get("error", 0) > 0
    assert counters["injected"].get("drop", 0) > 0
