"""Webhooks: signed CloudEvents (or legacy) deliveries to a real HTTP receiver on every change."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from quickbooks.objects.trackingclass import Class

from classsync.sandbox import RunningSandbox
from classsync.sandbox.cli import build_parser, config_from
from tests.fixtures.sandbox import make_qbo_client

pytestmark = pytest.mark.integration

VERIFIER = "test-verifier-token"
_WAIT = 10.0


class Receiver:
    """A webhook endpoint over real HTTP: records every delivery, answers queued statuses."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []  # answered first, then 200
        self.hold = threading.Event()  # cleared: answers wait until it is set again
        self.hold.set()
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._changed:
                    receiver.deliveries.append((dict(self.headers.items()), body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver._changed.notify_all()
                receiver.hold.wait(_WAIT)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/webhooks/qbo"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, condition: Callable[[], bool]) -> None:
        """Block until ``condition()`` holds after some delivery (fail after a few seconds)."""
        with self._changed:
            assert self._changed.wait_for(condition, _WAIT), f"got {self.deliveries!r}"

    def events(self) -> list[dict[str, Any]]:
        """Every CloudEvent received so far, in arrival order."""
        with self._changed:
            return [event for _, body in self.deliveries for event in json.loads(body)]

    def wait_for_events(self, predicate: Callable[[list[dict[str, Any]]], bool]) -> None:
        """Block until the events received so far satisfy ``predicate``."""
        self.wait_for(
            lambda: predicate([e for _, body in self.deliveries for e in json.loads(body)])
        )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.hold.set()
    running.close()


@pytest.fixture
def hooked(sandbox_factory: Callable[..., RunningSandbox], receiver: Receiver) -> RunningSandbox:
    return sandbox_factory(
        webhook_url=receiver.url,
        webhook_verifier_token=VERIFIER,
        webhook_batch_ms=20,
        webhook_retry_backoff_ms=10,
    )


def _wait_counters(sandbox: RunningSandbox, condition: Callable[[dict[str, Any]], bool]) -> None:
    deadline = time.monotonic() + _WAIT
    while not condition(counters := sandbox.admin.counters()):
        assert time.monotonic() < deadline, counters
        time.sleep(0.02)


def _new(qb: Any, name: str) -> Class:
    item = Class()
    item.Name = name
    return item.save(qb=qb)


def test_signature_is_hmac_sha256_of_the_raw_body_with_the_verifier_token(
    hooked: RunningSandbox, receiver: Receiver
) -> None:
    qb = make_qbo_client(hooked)
    _new(qb, "Signed")
    receiver.wait_for(lambda: len(receiver.deliveries) == 1)
    headers, body = receiver.deliveries[0]
    sent = headers["intuit-signature"]
    expected = base64.b64encode(hmac.new(VERIFIER.encode(), body, hashlib.sha256).digest())
    assert sent == expected.decode()
    assert headers["Content-Type"] == "application/json"
    # python-quickbooks' own check agrees (it is what a receiver may use).
    assert qb.validate_webhook_signature(body.decode(), sent, VERIFIER)
    assert not qb.validate_webhook_signature(body.decode(), sent, "another-token")
    assert VERIFIER not in json.dumps(hooked.admin.config())  # masked like the other secrets


def test_events_for_api_create_and_update_and_admin_changes(
    hooked: RunningSandbox, receiver: Receiver
) -> None:
    realm = hooked.admin.create_realm()
    realm_id = realm["realm_id"]
    qb = make_qbo_client(hooked, realm)
    item = _new(qb, "Via API")
    receiver.wait_for_events(lambda events: len(events) == 1)
    item.Name = "Via API renamed"
    item.save(qb=qb)
    receiver.wait_for_events(lambda events: len(events) == 2)
    hooked.admin.rename_class(realm_id, item.Id, "Renamed by the accountant")
    receiver.wait_for_events(lambda events: len(events) == 3)
    made = hooked.admin.create_class(realm_id, "Made in QBO")
    receiver.wait_for_events(lambda events: len(events) == 4)

    events = receiver.events()
    assert [(e["type"], e["intuitentityid"]) for e in events] == [
        ("qbo.class.created.v1", item.Id),
        ("qbo.class.updated.v1", item.Id),
        ("qbo.class.updated.v1", item.Id),
        ("qbo.class.created.v1", made["Id"]),
    ]
    for event in events:
        assert event["specversion"] == "1.0"
        assert event["intuitaccountid"] == realm_id
        assert event["datacontenttype"] == "application/json"
        assert event["data"] == {}
        assert event["source"]
        assert datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
    assert len({e["id"] for e in events}) == 4
    # Counted once the receiver's answer is read, just after it recorded the delivery.
    _wait_counters(hooked, lambda c: c["webhooks_sent"] == 4)
    counters = hooked.admin.counters()
    assert counters["webhook_events_sent"] == 4
    assert counters["webhooks_failed"] == 0


def test_a_receiver_that_does_not_answer_never_holds_up_the_api(
    hooked: RunningSandbox, receiver: Receiver
) -> None:
    qb = make_qbo_client(hooked)
    receiver.hold.clear()
    first = _new(qb, "Held")
    receiver.wait_for(lambda: len(receiver.deliveries) == 1)  # the delivery is now hanging
    second = _new(qb, "Answered anyway")
    assert Class.get(second.Id, qb=qb).Name == "Answered anyway"
    assert hooked.admin.counters()["webhooks_pending"] >= 1
    receiver.hold.set()
    receiver.wait_for(lambda: len(receiver.deliveries) == 2)
    assert [e["intuitentityid"] for e in receiver.events()] == [first.Id, second.Id]


def test_a_burst_of_changes_in_two_realms_is_one_delivery(
    hooked: RunningSandbox, receiver: Receiver
) -> None:
    hooked.admin.update_config(webhook_batch_ms=1500)
    one, two = hooked.admin.create_realm()["realm_id"], hooked.admin.create_realm()["realm_id"]
    hooked.admin.create_class(one, "First")
    hooked.admin.create_class(two, "Second")
    parent = hooked.admin.create_class(one, "Parent")
    hooked.admin.create_class(one, "Child", parent_id=parent["Id"])
    hooked.admin.set_class_active(one, parent["Id"], False)  # cascades to Child
    receiver.wait_for(lambda: len(receiver.deliveries) == 1)
    events = receiver.events()
    assert [e["intuitaccountid"] for e in events] == [one, two, one, one, one, one]
    assert [e["type"].split(".")[2] for e in events[-2:]] == ["updated", "updated"]
    _wait_counters(hooked, lambda c: c["webhooks_pending"] == 0)
    assert len(receiver.deliveries) == 1


def test_failed_deliveries_are_retried_then_dropped_and_counted(
    hooked: RunningSandbox, receiver: Receiver
) -> None:
    realm_id = hooked.admin.create_realm()["realm_id"]
    receiver.statuses = [500, 503]
    hooked.admin.create_class(realm_id, "Retried")
    _wait_counters(hooked, lambda c: c["webhooks_sent"] == 1)
    assert len(receiver.deliveries) == 3
    assert len({body for _, body in receiver.deliveries}) == 1  # the same delivery each time
    assert hooked.admin.counters()["webhook_retries"] == 2

    hooked.admin.set_faults(webhook_fail=True)  # the endpoint is "down"
    hooked.admin.update_config(webhook_retries=1)
    hooked.admin.create_class(realm_id, "Lost")
    _wait_counters(hooked, lambda c: c["webhooks_failed"] == 1 and c["webhooks_pending"] == 0)
    assert hooked.admin.counters()["webhook_events_failed"] == 1
    assert len(receiver.deliveries) == 3

    hooked.admin.clear_faults()
    hooked.admin.create_class(realm_id, "Back")
    receiver.wait_for(lambda: len(receiver.deliveries) == 4)


def test_duplicate_deliveries_send_the_same_body_twice(
    hooked: RunningSandbox, receiver: Receiver
) -> None:
    hooked.admin.set_faults(webhook_duplicate_deliveries=True)
    hooked.admin.create_class(hooked.config.dev_realm_id, "Twice")
    receiver.wait_for(lambda: len(receiver.deliveries) == 2)
    (first_headers, first), (second_headers, second) = receiver.deliveries
    assert first == second
    assert first_headers["intuit-signature"] == second_headers["intuit-signature"]
    _wait_counters(hooked, lambda c: c["webhooks_sent"] == 2)


def test_legacy_event_notifications_format(hooked: RunningSandbox, receiver: Receiver) -> None:
    hooked.admin.update_config(webhook_format="legacy", webhook_batch_ms=1500)
    realm_id = hooked.config.dev_realm_id
    made = hooked.admin.create_class(realm_id, "Legacy")
    hooked.admin.rename_class(realm_id, made["Id"], "Legacy renamed")
    receiver.wait_for(lambda: len(receiver.deliveries) == 1)
    headers, body = receiver.deliveries[0]
    payload = json.loads(body)
    [notification] = payload["eventNotifications"]
    assert notification["realmId"] == realm_id
    entities = notification["dataChangeEvent"]["entities"]
    assert [(e["id"], e["operation"], e["name"]) for e in entities] == [
        (made["Id"], "Create", "Class"),
        (made["Id"], "Update", "Class"),
    ]
    digest = hmac.new(VERIFIER.encode(), body, hashlib.sha256).digest()
    assert headers["intuit-signature"] == base64.b64encode(digest).decode()


def test_no_webhook_url_means_no_deliveries(fresh_sandbox: RunningSandbox) -> None:
    fresh_sandbox.admin.create_class(fresh_sandbox.config.dev_realm_id, "Quiet")
    counters = fresh_sandbox.admin.counters()
    assert counters["webhooks_pending"] == 0
    assert counters["webhooks_sent"] == counters["webhooks_failed"] == 0


@pytest.mark.unit
def test_webhook_and_cdc_options_from_flags() -> None:
    args = build_parser().parse_args(
        [
            "--webhook-url",
            "http://127.0.0.1:9/hook",
            "--webhook-verifier-token",
            "secret-token",
            "--webhook-format",
            "legacy",
            "--webhook-duplicate-deliveries",
            "--cdc-max-objects",
            "5",
            "--cdc-lookback-seconds",
            "60",
        ]
    )
    config = config_from(args, {"SANDBOX_WEBHOOK_BATCH_MS": "5"})
    assert config.webhook_url == "http://127.0.0.1:9/hook"
    assert config.webhook_verifier_token == "secret-token"
    assert config.webhook_format == "legacy"
    assert config.webhook_duplicate_deliveries is True
    assert (config.cdc_max_objects, config.cdc_lookback_seconds) == (5, 60.0)
    assert config.webhook_batch_ms == 5.0
    assert config.to_dict()["webhook_verifier_token"] == "***"
    assert "secret-token" not in repr(config)
