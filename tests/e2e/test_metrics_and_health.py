"""/metrics moves while Classes sync; gRPC health and /readyz follow the database and the realm."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from classsync.api.server import QBO_HEALTH_NAME, SERVICE_NAME
from tests.e2e.conftest import Service, klass
from tests.e2e.processes import run_cli, server_env
from tests.e2e.tcp_proxy import TcpProxy
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
CREATE_CLASS = f"/{SERVICE_NAME}/CreateClass"
_WAIT_S = 20.0  # bound on anything a test waits for here


def http_get(svc: Service, path: str) -> tuple[int, str]:
    port = svc.app.observability.http_port  # type: ignore[union-attr]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def scrape(svc: Service) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, body = http_get(svc, "/metrics")
    assert status == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def sample(svc: Service, name: str, **labels: str) -> float:
    return scrape(svc).get((name, frozenset(labels.items())), 0.0)


def health(svc: Service, name: str) -> int:
    stub = health_pb2_grpc.HealthStub(svc.channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status)


def test_metrics_move_while_classes_sync(service_factory: Any, fresh_sandbox: Any) -> None:
    fresh_sandbox.admin.set_faults(latency_ms=1500)  # slow QBO: the backlog is visible
    svc: Service = service_factory(
        sandbox_=fresh_sandbox, realm_=fresh_sandbox.admin.create_realm()
    )
    realm = svc.realm_id
    names = [f"Metered{index}" for index in range(12)]
    [reply] = svc.send(
        [klass(name) for name in names], metadata=[("x-classsync-wait-seconds", "0")]
    )
    assert all(result.status == "PENDING" for result in reply.results)

    # The first scrape (the queue gauges are cached for 2 s after it) while QBO is still busy.
    during = scrape(svc)
    assert during[("classsync_classes_received_total", frozenset())] == 12
    assert during.get(("classsync_classes_synced_total", frozenset({("realm", realm)})), 0) == 0
    backlog = sum(
        during.get(("classsync_jobs", frozenset({("realm", realm), ("status", status)})), 0)
        for status in ("PENDING", "IN_PROGRESS")
    )
    assert backlog > 0
    assert ("classsync_oldest_pending_age_seconds", frozenset({("realm", realm)})) in during

    fresh_sandbox.admin.clear_faults()
    wait_for(
        lambda: sample(svc, "classsync_jobs", realm=realm, status="SYNCED") == 12,
        timeout=_WAIT_S,
        what="every job SYNCED in classsync_jobs",
    )
    after = scrape(svc)
    assert after[("classsync_classes_synced_total", frozenset({("realm", realm)}))] == 12
    assert after[("classsync_oldest_pending_age_seconds", frozenset({("realm", realm)}))] == 0
    assert after[("classsync_realm_connected", frozenset({("realm", realm)}))] == 1
    ok_requests = sum(
        value
        for (name, labels), value in after.items()
        if name == "classsync_qbo_requests_total" and ("outcome", "ok") in labels
    )
    assert ok_requests >= 1
    timed = sum(
        value for (name, _), value in after.items() if name == "classsync_qbo_request_seconds_count"
    )
    assert timed >= ok_requests
    call = frozenset({("method", CREATE_CLASS), ("code", "OK")})
    assert after[("classsync_grpc_calls_total", call)] == 1
    latency = frozenset({("method", CREATE_CLASS)})
    assert after[("classsync_grpc_call_seconds_count", latency)] == 1
    assert {c["Name"] for c in svc.qbo_classes()} == set(names)


def test_health_follows_the_database(service_factory: Any, database_url: str, sandbox: Any) -> None:
    url = make_url(database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.open()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    realm = sandbox.admin.create_realm()
    try:
        svc: Service = service_factory(db_url=proxied, realm_=realm)
        assert http_get(svc, "/healthz")[0] == 200
        status, body = http_get(svc, "/readyz")
        assert status == 200, body
        assert json.loads(body)["database"]["schema_at_head"] is True
        assert health(svc, "") == health(svc, SERVICE_NAME) == SERVING
        assert sample(svc, "classsync_ready") == 1

        proxy.close()  # connections refused, open ones cut
        wait_for(
            lambda: health(svc, "") == NOT_SERVING,
            timeout=_WAIT_S,
            what="overall health NOT_SERVING",
        )
        assert health(svc, SERVICE_NAME) == NOT_SERVING
        assert sample(svc, "classsync_ready") == 0
        status, body = http_get(svc, "/readyz")
        assert status == 503
        assert json.loads(body)["reasons"][0].startswith("database unreachable")
        assert http_get(svc, "/healthz")[0] == 200  # alive all the same
        down = run_cli(server_env(proxied, sandbox, realm), "status")
        assert down.returncode == 1
        assert json.loads(down.stdout)["database"]["reachable"] is False

        proxy.open()
        wait_for(
            lambda: health(svc, "") == SERVING, timeout=_WAIT_S, what="overall health SERVING again"
        )
        assert health(svc, SERVICE_NAME) == SERVING
        wait_for(
            lambda: http_get(svc, "/readyz")[0] == 200, timeout=_WAIT_S, what="/readyz 200 again"
        )
        [reply] = svc.send([klass("AfterTheOutage")])
        assert reply.results[0].status == "SYNCED"
        up = run_cli(server_env(proxied, sandbox, realm), "status")
        assert up.returncode == 0, up.stderr
        report = json.loads(up.stdout)
        assert report["ready"] is True
        assert report["jobs"]["SYNCED"] == 1
    finally:
        proxy.close()


def test_a_revoked_refresh_token_shows_in_health_and_metrics(
    service_factory: Any, sandbox: Any
) -> None:
    realm = sandbox.admin.create_realm()
    svc: Service = service_factory(realm_=realm)
    [reply] = svc.send([klass("BeforeRevoke")])
    assert reply.results[0].status == "SYNCED"
    assert health(svc, QBO_HEALTH_NAME) == SERVING
    assert sample(svc, "classsync_realm_connected", realm=svc.realm_id) == 1

    sandbox.admin.revoke_tokens(svc.realm_id)
    sandbox.admin.expire_access_tokens(svc.realm_id)  # the next QBO call must refresh
    [reply] = svc.send([klass("AfterRevoke")], metadata=[("x-classsync-wait-seconds", "2")])
    assert reply.results[0].status != "SYNCED"
    wait_for(
        lambda: health(svc, QBO_HEALTH_NAME) == NOT_SERVING,
        timeout=_WAIT_S,
        what="classsync.qbo NOT_SERVING",
    )
    assert health(svc, "") == SERVING  # the service still takes Classes in
    wait_for(
        lambda: sample(svc, "classsync_realm_connected", realm=svc.realm_id) == 0,
        timeout=_WAIT_S,
        what="classsync_realm_connected 0",
    )


def test_serve_refuses_a_metrics_address_in_use(database_url: str, sandbox: Any) -> None:
    realm = sandbox.admin.create_realm()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        env = server_env(database_url, sandbox, realm, METRICS_ADDRESS=address, LOG_LEVEL="INFO")
        done = run_cli(env, "serve")
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("classsync: configuration error: METRICS_ADDRESS")


def _requests(svc: Service, operation: str) -> float:
    """classsync_qbo_requests_total of the service's realm for one operation, outcome ok."""
    return sample(
        svc,
        "classsync_qbo_requests_total",
        realm=svc.realm_id,
        operation=operation,
        outcome="ok",
    )


def test_qbo_calls_reading_changes_back_are_counted(
    service_factory: Any, sandbox_factory: Any
) -> None:
    box = sandbox_factory()
    verifier = "metrics-verifier-token"
    svc: Service = service_factory(
        sandbox_=box,
        realm_=box.admin.create_realm(),
        qbo_cdc_interval_seconds=0.5,
        webhook_address="127.0.0.1:0",
        qbo_webhook_verifier_token=verifier,
    )
    # No CDC mark yet: the poller's first round reads every Class (a query), then polls CDC.
    wait_for(
        lambda: _requests(svc, "query") >= 1,
        timeout=_WAIT_S,
        what="the full read counted as a query",
    )
    wait_for(lambda: _requests(svc, "cdc") >= 1, timeout=_WAIT_S, what="a CDC poll counted")
    assert _requests(svc, "read") == 0  # nothing was notified yet

    two_way = svc.app.two_way
    assert two_way is not None
    assert two_way.webhooks is not None
    box.admin.update_config(
        webhook_url=f"http://127.0.0.1:{two_way.webhooks.port}/webhooks/qbo",
        webhook_verifier_token=verifier,
    )
    created = box.admin.create_class(svc.realm_id, "Made In QBO")
    # The webhook worker reads the notified Class back from QBO (the engine made no call).
    wait_for(
        lambda: _requests(svc, "read") >= 1,
        timeout=_WAIT_S,
        what="the webhook worker's read counted",
    )
    wait_for(
        lambda: any(r.qb_id == created["Id"] for r in svc.rows()),
        timeout=_WAIT_S,
        what="the Class applied",
    )
    timed = sample(svc, "classsync_qbo_request_seconds_count", operation="cdc")
    assert timed >= 1
