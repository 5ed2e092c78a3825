"""Webhook deliveries: Class changes batched into signed CloudEvents (or legacy) POSTs, retried."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from classsync.sandbox.config import SandboxConfig

log = logging.getLogger(__name__)

CREATED, UPDATED, DELETED = "created", "updated", "deleted"
_LEGACY_OPERATIONS = {CREATED: "Create", UPDATED: "Update", DELETED: "Delete"}
_SOURCE = "intuit.classsync-sandbox"


@dataclass(frozen=True, slots=True)
class ClassEvent:
    """One change of one Class: what happened, to which Id, in which realm, when (epoch s)."""

    realm_id: str
    entity_id: str
    operation: str
    when: float
    event_id: str


def _rfc3339(epoch: float) -> str:
    stamp = datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def cloudevents_body(events: list[ClassEvent]) -> list[dict[str, Any]]:
    """Intuit's CloudEvents payload: a JSON array, one event per change, no entity data."""
    return [
        {
            "specversion": "1.0",
            "id": event.event_id,
            "source": _SOURCE,
            "type": f"qbo.class.{event.operation}.v1",
            "datacontenttype": "application/json",
            "time": _rfc3339(event.when),
            "intuitentityid": event.entity_id,
            "intuitaccountid": event.realm_id,
            "data": {},
        }
        for event in events
    ]


def legacy_body(events: list[ClassEvent]) -> dict[str, Any]:
    """The older payload: one eventNotifications entry per realm, in first-seen order."""
    by_realm: dict[str, list[dict[str, str]]] = {}
    for event in events:
        by_realm.setdefault(event.realm_id, []).append(
            {
                "id": event.entity_id,
                "operation": _LEGACY_OPERATIONS[event.operation],
                "name": "Class",
                "lastUpdated": _rfc3339(event.when),
            }
        )
    return {
        "eventNotifications": [
            {"realmId": realm_id, "dataChangeEvent": {"entities": entities}}
            for realm_id, entities in by_realm.items()
        ]
    }


def signature(verifier_token: str, body: bytes) -> str:
    """The intuit-signature header: base64 of HMAC-SHA256 of the raw body, keyed by the token."""
    digest = hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class WebhookSender:
    """Queues events, sends each batch window as one delivery, retries with backoff, then drops.

    Never awaited by an API handler: ``publish`` only appends and arms a timer, so deliveries
    cannot slow an answer down. Runs on the sandbox's event loop.
    """

    def __init__(
        self,
        settings: Callable[[], SandboxConfig],
        count: Callable[[str, int], None],
    ) -> None:
        self._settings = settings
        self._count = count
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._queue: list[ClassEvent] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight_events = 0

    @property
    def pending(self) -> int:
        """Events queued or being delivered (0 when every delivery has settled)."""
        return len(self._queue) + self._in_flight_events

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the serving loop; before this, events are not sent."""
        self._loop = loop

    def publish(self, realm_id: str, entity_id: int | str, operation: str, when: float) -> None:
        """Queue one Class change; no-op while no webhook URL is configured."""
        config = self._settings()
        if not config.webhook_url or self._loop is None:
            return
        self._queue.append(ClassEvent(realm_id, str(entity_id), operation, when, str(uuid.uuid4())))
        if self._flush_handle is None:
            delay = max(0.0, config.webhook_batch_ms) / 1000.0
            self._flush_handle = self._loop.call_later(delay, self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        events, self._queue = self._queue, []
        if not events or self._loop is None:
            return
        self._in_flight_events += len(events)
        task = self._loop.create_task(self._deliver(events))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, events: list[ClassEvent]) -> None:
        try:
            config = self._settings()
            if config.webhook_format == "legacy":
                payload: Any = legacy_body(events)
            else:
                payload = cloudevents_body(events)
            body = json.dumps(payload, separators=(",", ":")).encode()
            copies = 2 if config.webhook_duplicate_deliveries else 1
            for _ in range(copies):
                await self._deliver_once(body, len(events))
        finally:
            self._in_flight_events -= len(events)

    async def _deliver_once(self, body: bytes, event_count: int) -> None:
        """POST ``body`` until a 2xx answer or the retries run out (then drop and count)."""
        attempt = 0
        while True:
            config = self._settings()  # options may change between attempts
            if await self._attempt(config, body):
                self._count("webhooks_sent", 1)
                self._count("webhook_events_sent", event_count)
                return
            if attempt >= config.webhook_retries:
                self._count("webhooks_failed", 1)
                self._count("webhook_events_failed", event_count)
                return
            self._count("webhook_retries", 1)
            await asyncio.sleep(config.webhook_retry_backoff_ms / 1000.0 * 2**attempt)
            attempt += 1

    async def _attempt(self, config: SandboxConfig, body: bytes) -> bool:
        if config.webhook_fail or not config.webhook_url:
            return False
        headers = {
            "Content-Type": "application/json",
            "intuit-signature": signature(config.webhook_verifier_token, body),
        }
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                config.webhook_url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=config.webhook_timeout or None),
            ) as response:
                await response.read()
                return 200 <= response.status < 300
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            log.info("webhook delivery to %s failed: %s", config.webhook_url, error)
            return False

    async def close(self) -> None:
        """Stop: cancel the timer and unsent deliveries, close the HTTP client."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None
