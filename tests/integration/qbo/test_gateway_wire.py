"""What the gateway puts on the wire, and odd answers the sandbox never gives (stub HTTP server)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from classsync.domain import (
    ClassWrite,
    QboAuthExpired,
    QboOutcomeUnknown,
    QboRetryable,
    QboThrottled,
)
from classsync.qbo.gateway import QuickbooksGateway

pytestmark = pytest.mark.integration

_CLASS = {"Id": "7", "SyncToken": "3", "Name": "East", "FullyQualifiedName": "East", "Active": True}


@dataclass
class Answer:
    """One canned HTTP answer."""

    status: int = 200
    body: str = json.dumps({"Class": _CLASS})
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class StubQbo:
    """A loopback HTTP server that records requests and replies from a queue of answers."""

    answers: list[Answer] = field(default_factory=list)
    seen: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""


class StaticTokens:
    """An AccessTokens that hands out tok-1, then tok-2 after a 401."""

    def __init__(self) -> None:
        self.current = "tok-1"
        self.refreshes = 0

    def access_token(self, realm_id: str) -> str:
        return self.current

    def refresh_after_401(self, realm_id: str, rejected_access_token: str) -> str:
        self.refreshes += 1
        self.current = "tok-2"
        return self.current


@pytest.fixture
def stub() -> Iterator[StubQbo]:
    state = StubQbo()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            state.seen.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body,
                }
            )
            answer = state.answers.pop(0) if state.answers else Answer()
            payload = answer.body.encode()
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _answer  # noqa: N815 (http.server dispatches on these names)
        do_POST = _answer  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v3"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def _gateway(base_url: str, tokens: Any | None = None, timeout_s: float = 5.0) -> QuickbooksGateway:
    return QuickbooksGateway(
        tokens or StaticTokens(), api_base_url=base_url, environment="sandbox", timeout_s=timeout_s
    )


def test_create_body_has_no_sync_token_or_qualified_name(stub: StubQbo) -> None:
    write = ClassWrite(name="Child", active=True, parent_id="5", request_id="req-1")
    _gateway(stub.base_url).create("123", write)
    sent = stub.seen[0]
    assert sent["path"].startswith("/v3/company/123/class?")
    assert "requestid=req-1" in sent["path"]
    assert "minorversion=75" in sent["path"]
    body = json.loads(sent["body"])
    assert body["ParentRef"] == {"value": "5"}
    assert body["SubClass"] is True
    assert "SyncToken" not in body
    assert "FullyQualifiedName" not in body
    assert sent["headers"]["Authorization"] == "Bearer tok-1"


def test_full_update_sends_every_writable_field(stub: StubQbo) -> None:
    write = ClassWrite(name="East", active=False, qbo_id="7", sync_token="3")
    result = _gateway(stub.base_url).update("123", write)
    body = json.loads(stub.seen[0]["body"])
    assert body["Id"] == "7"
    assert body["SyncToken"] == "3"
    assert body["sparse"] is False
    assert (body["Name"], body["Active"], body["SubClass"]) == ("East", False, False)
    assert "ParentRef" not in body  # no parent: QBO sets it NULL on a full update
    assert result.sync_token == "3"


def test_sparse_update_sends_only_what_changes(stub: StubQbo) -> None:
    write = ClassWrite(name="East", active=True, qbo_id="7", sync_token="3", sparse=True)
    _gateway(stub.base_url).update("123", write)
    body = json.loads(stub.seen[0]["body"])
    assert body == {"Id": "7", "SyncToken": "3", "sparse": True, "Name": "East", "Active": True}


def test_non_numeric_ids_are_still_updates(stub: StubQbo) -> None:
    write = ClassWrite(name="East", active=True, qbo_id="abc-7", sync_token="1", sparse=True)
    _gateway(stub.base_url).update("123", write)
    assert json.loads(stub.seen[0]["body"])["Id"] == "abc-7"


def test_a_second_401_is_raised_after_one_refresh(stub: StubQbo) -> None:
    unauthorized = Answer(
        401,
        json.dumps(
            {
                "fault": {
                    "error": [
                        {
                            "message": (
                                "message=AuthenticationFailed; errorCode=003200; statusCode=401"
                            ),
                            "detail": "Token expired",
                            "code": "3200",
                        }
                    ],
                    "type": "AUTHENTICATION",
                }
            }
        ),
    )
    stub.answers = [unauthorized, unauthorized]
    tokens = StaticTokens()
    with pytest.raises(QboAuthExpired, match="AuthenticationFailed") as caught:
        _gateway(stub.base_url, tokens).read("123", "7")
    assert caught.value.code == "3200"
    assert tokens.refreshes == 1
    assert [s["headers"]["Authorization"] for s in stub.seen] == ["Bearer tok-1", "Bearer tok-2"]


def test_fault_without_a_code_is_retryable(stub: StubQbo) -> None:
    stub.answers = [Answer(400, json.dumps({"Fault": {"Error": [{"Message": "odd"}]}}))]
    with pytest.raises(QboRetryable, match="could not read"):
        _gateway(stub.base_url).read("123", "7")


def test_json_throttle_fault_with_http_date_retry_after(stub: StubQbo) -> None:
    fault = {
        "Fault": {"Error": [{"Message": "ThrottleExceeded", "code": "3001"}], "type": "SERVICE"}
    }
    stub.answers = [
        Answer(429, json.dumps(fault), {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        Answer(429, "plain text, not json", {"Retry-After": "3"}),
    ]
    gateway = _gateway(stub.base_url)
    with pytest.raises(QboThrottled) as caught:
        gateway.read("123", "7")
    assert caught.value.retry_after == 0.0  # a date in the past: retry now
    with pytest.raises(QboThrottled) as caught:
        gateway.read("123", "7")
    assert caught.value.retry_after == 3.0


def test_unreachable_qbo_is_retryable_even_for_writes() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = _gateway(f"http://127.0.0.1:{port}/v3")
    with pytest.raises(QboRetryable, match="could not connect") as caught:
        gateway.create("123", ClassWrite(name="East", active=True))
    assert not isinstance(caught.value, QboOutcomeUnknown)


def test_plain_http_is_refused_off_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        _gateway("http://qbo.example.com/v3")
