"""The webhook endpoint's pure parts and the inbox worker, with fakes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime

import pytest

from classsync.api.webhooks import BadPayload, parse_payload, signature_is_valid
from classsync.sync.conflicts import ConflictCounter
from classsync.sync.limiter import RateLimiter
from classsync.sync.push import WebhookIntake, WebhookWorker
from classsync.sync.remote_changes import RemoteChangeApplier
from tests.fakes.remote import FakeFeed, FakeRemoteUow, RemoteWorld, qbo_class

pytestmark = pytest.mark.unit

TOKEN = "verifier"
NOW = datetime(2026, 12, 1, 12, 0, 0)


def cloud_event(event_id: str, entity: str, realm: str = "r1", kind: str = "class.updated") -> dict:
    return {
        "specversion": "1.0",
        "id": event_id,
        "type": f"qbo.{kind}.v1",
        "time": "2026-12-01T11:59:59.123Z",
        "intuitentityid": entity,
        "intuitaccountid": realm,
        "data": {},
    }


def test_the_signature_is_the_base64_hmac_of_the_raw_body() -> None:
    body = b'[{"id": "1"}]'
    good = base64.b64encode(hmac.new(TOKEN.encode(), body, hashlib.sha256).digest()).decode()
    assert signature_is_valid(body, good, TOKEN)
    assert not signature_is_valid(body + b" ", good, TOKEN)
    assert not signature_is_valid(body, None, TOKEN)
    assert not signature_is_valid(body, "", TOKEN)
    assert not signature_is_valid(body, good, "")


def test_cloudevents_mixing_realms_are_parsed() -> None:
    body = json.dumps(
        [cloud_event("e1", "5"), cloud_event("e2", "6", realm="r2", kind="class.created")]
    )
    first, second = parse_payload(body.encode())
    assert (
        first.event_id,
        first.realm_id,
        first.entity_name,
        first.entity_id,
        first.operation,
    ) == (
        "e1",
        "r1",
        "Class",
        "5",
        "updated",
    )
    assert first.occurred_at == datetime(2026, 12, 1, 11, 59, 59, 123000)
    assert (second.realm_id, second.operation) == ("r2", "created")


def test_the_legacy_format_gets_a_stable_event_id() -> None:
    payload = {
        "eventNotifications": [
            {
                "realmId": "r1",
                "dataChangeEvent": {
                    "entities": [
                        {
                            "name": "Class",
                            "id": "5",
                            "operation": "Update",
                            "lastUpdated": "2026-12-01T11:00:00Z",
                        }
                    ]
                },
            }
        ]
    }
    [once] = parse_payload(json.dumps(payload).encode())
    [again] = parse_payload(json.dumps(payload).encode())
    assert once.event_id == again.event_id
    assert (once.entity_name, once.entity_id, once.operation) == ("Class", "5", "update")


@pytest.mark.parametrize(
    "body", [b"not json", b"{}", b'[{"type": "qbo.class.updated.v1"}]', b"[1]"]
)
def test_other_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(BadPayload):
        parse_payload(body)


def test_a_redelivered_event_is_stored_and_applied_once() -> None:
    world = RemoteWorld()
    feed = FakeFeed(NOW)
    feed.add(qbo_class("5", "Made In QBO", 0), NOW)
    uow = lambda: FakeRemoteUow(world)  # noqa: E731
    applier = RemoteChangeApplier(uow, ConflictCounter(), clock=lambda: NOW)
    worker = WebhookWorker(feed, applier, uow, RateLimiter(), lambda: ["r1"], clock=lambda: NOW)
    intake = WebhookIntake(uow, worker.wake, clock=lambda: NOW)
    notices = parse_payload(json.dumps([cloud_event("e1", "5")]).encode())
    assert intake.accept(notices) == 1
    assert intake.accept(notices) == 0
    assert worker.process_due() == 1
    assert worker.process_due() == 0
    assert [c.remote.id for c in world.applied] == ["5"]


def test_events_of_other_realms_and_entities_are_settled_without_a_qbo_read() -> None:
    world = RemoteWorld()
    feed = FakeFeed(NOW)
    uow = lambda: FakeRemoteUow(world)  # noqa: E731
    applier = RemoteChangeApplier(uow, ConflictCounter(), clock=lambda: NOW)
    worker = WebhookWorker(feed, applier, uow, RateLimiter(), lambda: ["r1"], clock=lambda: NOW)
    intake = WebhookIntake(uow, worker.wake, clock=lambda: NOW)
    events = [
        cloud_event("e1", "5", realm="other"),
        cloud_event("e2", "9", kind="customer.updated"),
    ]
    intake.accept(parse_payload(json.dumps(events).encode()))
    assert worker.process_due() == 2
    assert world.applied == []
    assert all(done for _, done in world.events.values())


def test_a_class_qbo_will_not_read_asks_cdc_to_poll_now() -> None:
    world, feed, polls = RemoteWorld(), FakeFeed(NOW), []
    uow = lambda: FakeRemoteUow(world)  # noqa: E731
    applier = RemoteChangeApplier(uow, ConflictCounter(), clock=lambda: NOW)
    worker = WebhookWorker(
        feed,
        applier,
        uow,
        RateLimiter(),
        lambda: ["r1"],
        clock=lambda: NOW,
        unreadable=lambda: polls.append(1),
    )
    WebhookIntake(uow, worker.wake, clock=lambda: NOW).accept(
        parse_payload(json.dumps([cloud_event("e1", "404")]).encode())
    )
    assert worker.process_due() == 1
    assert polls == [1]
    assert world.applied == []
