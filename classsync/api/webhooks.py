"""The QBO webhook endpoint (HTTP POST /webhooks/qbo): check the signature, parse, hand to the inbox.

Nothing here reads QBO or applies a change: the events are stored first and answered 200 at once
(Intuit expects a quick answer; docs/qbo.md, "CDC and webhooks"), a worker does the rest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog

from classsync.domain import WebhookNotice

log = structlog.get_logger(__name__)

WEBHOOK_PATH = "/webhooks/qbo"
SIGNATURE_HEADER = "intuit-signature"
# A delivery is a few events; anything this large is not from Intuit.
MAX_BODY_BYTES = 1024 * 1024
_CLOUDEVENT_PREFIX = "qbo."
_SOCKET_TIMEOUT_S = 10.0


class BadPayload(ValueError):
    """The body is not a webhook payload this endpoint understands."""


def signature_is_valid(body: bytes, signature: str | None, verifier_token: str) -> bool:
    """``intuit-signature`` = base64(HMAC-SHA256(body, verifier token)), compared in constant time."""
    if not signature or not verifier_token:
        return False
    expected = base64.b64encode(
        hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()
    ).decode()
    return hmac.compare_digest(expected.encode(), signature.strip().encode())


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _cloud_event(event: Any) -> WebhookNotice:
    """``{"id", "type": "qbo.class.updated.v1", "intuitentityid", "intuitaccountid", "time"}``."""
    if not isinstance(event, dict):
        raise BadPayload("an event is not an object")
    kind = str(event.get("type") or "")
    parts = kind.split(".")
    if not kind.startswith(_CLOUDEVENT_PREFIX) or len(parts) < 3:
        raise BadPayload(f"unknown event type {kind!r}")
    event_id = event.get("id")
    entity_id = event.get("intuitentityid")
    realm_id = event.get("intuitaccountid")
    if not (event_id and entity_id and realm_id):
        raise BadPayload("an event lacks id, intuitentityid or intuitaccountid")
    return WebhookNotice(
        event_id=str(event_id)[:191],
        realm_id=str(realm_id),
        entity_name=parts[1].capitalize(),
        entity_id=str(entity_id),
        operation=parts[2].lower(),
        occurred_at=_time(event.get("time")),
    )


def _legacy_events(payload: dict[str, Any]) -> list[WebhookNotice]:
    """``{"eventNotifications": [{"realmId", "dataChangeEvent": {"entities": [...]}}]}``.

    That format carries no event id: one is derived from what identifies the change, so a
    redelivery maps to the same id.
    """
    notices = []
    for notification in payload.get("eventNotifications") or []:
        realm_id = str((notification or {}).get("realmId") or "")
        entities = ((notification or {}).get("dataChangeEvent") or {}).get("entities") or []
        for entity in entities:
            if not realm_id or not isinstance(entity, dict) or not entity.get("id"):
                raise BadPayload("a legacy notification lacks realmId or an entity id")
            fields = [
                realm_id,
                entity.get("name"),
                entity.get("id"),
                entity.get("operation"),
                entity.get("lastUpdated"),
            ]
            digest = hashlib.sha256("|".join(str(f) for f in fields).encode()).hexdigest()
            notices.append(
                WebhookNotice(
                    event_id=f"legacy-{digest}",
                    realm_id=realm_id,
                    entity_name=str(entity.get("name") or ""),
                    entity_id=str(entity["id"]),
                    operation=str(entity.get("operation") or "").lower(),
                    occurred_at=_time(entity.get("lastUpdated")),
                )
            )
    return notices


def parse_payload(body: bytes) -> list[WebhookNotice]:
    """CloudEvents (a JSON array) or the older ``eventNotifications`` object."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadPayload("the body is not JSON") from error
    if isinstance(payload, list):
        return [_cloud_event(event) for event in payload]
    if isinstance(payload, dict) and "eventNotifications" in payload:
        return _legacy_events(payload)
    raise BadPayload("neither a CloudEvents array nor eventNotifications")


class _Handler(BaseHTTPRequestHandler):
    server: WebhookServer._Http
    timeout = _SOCKET_TIMEOUT_S  # a client that stops sending does not hold a thread for ever

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != WEBHOOK_PATH:
            self._answer(HTTPStatus.NOT_FOUND)
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._answer(HTTPStatus.BAD_REQUEST)
            return
        if length > MAX_BODY_BYTES:
            self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return
        body = self.rfile.read(length)
        owner = self.server.owner
        if not signature_is_valid(body, self.headers.get(SIGNATURE_HEADER), owner.verifier_token()):
            log.warning("webhook_signature_refused", client=self.client_address[0])
            self._answer(HTTPStatus.UNAUTHORIZED)
            return
        try:
            notices = parse_payload(body)
        except BadPayload as error:
            log.warning("webhook_payload_refused", error=str(error))
            self._answer(HTTPStatus.BAD_REQUEST)
            return
        try:
            owner.accept(notices)
        except Exception:
            # Not stored: a non-2xx answer makes Intuit deliver again.
            log.exception("webhook_store_failed", events=len(notices))
            self._answer(HTTPStatus.SERVICE_UNAVAILABLE)
            return
        self._answer(HTTPStatus.OK)

    def do_GET(self) -> None:
        self._answer(HTTPStatus.METHOD_NOT_ALLOWED)

    def _answer(self, status: HTTPStatus) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Requests are logged through structlog above, not to stderr."""


class WebhookServer:
    """The webhook listener on its own address (``WEBHOOK_ADDRESS``), served by a thread pool."""

    class _Http(ThreadingHTTPServer):
        daemon_threads = True
        owner: WebhookServer

    def __init__(
        self,
        address: str,
        *,
        verifier_token: Callable[[], str],
        accept: Callable[[Sequence[WebhookNotice]], int],
    ) -> None:
        host, _, port = address.rpartition(":")
        self.verifier_token = verifier_token
        self.accept = accept
        self._http = WebhookServer._Http((host.strip("[]") or "127.0.0.1", int(port)), _Handler)
        self._http.owner = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound (an address ending in :0 picks a free one)."""
        return int(self._http.server_address[1])

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._http.serve_forever, name="webhook-http", daemon=True
        )
        self._thread.start()
        log.info("webhook_listener_started", port=self.port, path=WEBHOOK_PATH)

    def stop(self) -> None:
        """Stop listening (requests in flight finish on their own threads)."""
        if self._thread is not None:
            self._http.shutdown()  # waits for serve_forever to return: only once it runs
        self._http.server_close()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
