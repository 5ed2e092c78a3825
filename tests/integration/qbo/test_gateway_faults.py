"""QBO faults and transport failures reach the caller as the right domain errors (sandbox)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from structlog.testing import capture_logs

from classsync.domain import (
    ClassWrite,
    QboDuplicateName,
    QboError,
    QboInvalidReference,
    QboNotFound,
    QboOutcomeUnknown,
    QboRejected,
    QboRetryable,
    QboServerError,
    QboStaleSyncToken,
    QboThrottled,
)
from classsync.sandbox import SandboxConfig, start_in_thread
from tests.integration.qbo.conftest import Stack, build_stack, unique

pytestmark = pytest.mark.integration


def test_stale_sync_token_is_5010(stack: Stack) -> None:
    created = stack.create()
    write = ClassWrite(name=created.name + " a", active=True, qbo_id=created.id, sync_token="0")
    stack.gateway.update(stack.realm_id, write)
    with pytest.raises(QboStaleSyncToken) as caught:
        stack.gateway.update(stack.realm_id, write)  # SyncToken 0 is now stale
    assert caught.value.code == "5010"
    assert isinstance(caught.value, QboRejected)


def test_duplicate_name_is_6240(stack: Stack) -> None:
    name = unique("Twice")
    stack.create(name)
    with pytest.raises(QboDuplicateName) as caught:
        stack.create(name)
    assert caught.value.code == "6240"
    assert "Duplicate" in str(caught.value)


def test_unknown_id_is_610(stack: Stack) -> None:
    with pytest.raises(QboNotFound) as caught:
        stack.gateway.read(stack.realm_id, "987654321")
    assert caught.value.code == "610"


def test_missing_parent_is_2500(stack: Stack) -> None:
    with pytest.raises(QboInvalidReference) as caught:
        stack.create(parent_id="987654321")
    assert caught.value.code == "2500"


@pytest.mark.parametrize("body", ["json", "xml"])
def test_429_in_either_body_format_is_throttled_with_retry_after(body: str) -> None:
    config = SandboxConfig(port=0, throttle_body=body, retry_after=7)
    with start_in_thread(config) as sandbox:
        stack = build_stack(sandbox)
        sandbox.admin.set_faults(throttle_seconds=30)
        with pytest.raises(QboThrottled) as caught:
            stack.gateway.read(stack.realm_id, "1")
        assert caught.value.retry_after == 7
        with pytest.raises(QboThrottled):
            stack.create()


@pytest.mark.parametrize("error_body", ["html", "json", "text", "empty"])
def test_5xx_is_a_server_error_not_throttled_nor_rejected(
    fresh_stack: Stack, error_body: str
) -> None:
    fresh_stack.sandbox.admin.set_faults(
        error_rate=1.0, error_statuses=[503], error_body=error_body
    )
    with capture_logs() as logs, pytest.raises(QboRetryable) as caught:
        fresh_stack.create()
    error = caught.value
    # Not throttled, not "outcome unknown" (QBO answered), not rejected: QBO's own trouble.
    assert type(error) is QboServerError
    assert error.status == 503
    assert "<html" not in str(error).lower()
    calls = [e for e in logs if e["event"] == "qbo_call"]
    assert calls[-1]["http_status"] == 503
    assert calls[-1]["status"] == "QboServerError"


@pytest.mark.parametrize("status", [500, 502, 504])
def test_every_5xx_status_is_a_server_error_for_reads_and_batches(
    fresh_stack: Stack, status: int
) -> None:
    fresh_stack.sandbox.admin.set_faults(error_rate=1.0, error_statuses=[status])
    with pytest.raises(QboServerError) as read_error:
        fresh_stack.gateway.read(fresh_stack.realm_id, "1")
    assert read_error.value.status == status
    write = ClassWrite(name=unique("Batch5xx"), active=True, request_id=str(uuid.uuid4()))
    with pytest.raises(QboServerError) as batch_error:
        fresh_stack.gateway.batch_write(fresh_stack.realm_id, [write])
    assert batch_error.value.status == status


def test_dropped_connection_during_a_write_is_outcome_unknown(fresh_stack: Stack) -> None:
    admin = fresh_stack.sandbox.admin
    admin.set_faults(drop_rate=1.0, drop_mode="after", fault_target="writes")
    write = ClassWrite(name=unique("Dropped"), active=True, request_id=str(uuid.uuid4()))
    with pytest.raises(QboOutcomeUnknown):
        fresh_stack.gateway.create(fresh_stack.realm_id, write)
    admin.clear_faults()
    # The write did happen; retrying with the same requestid must not create a second class.
    created = fresh_stack.gateway.create(fresh_stack.realm_id, write)
    names = [c["Name"] for c in admin.classes(fresh_stack.realm_id)]
    assert names.count(write.name) == 1
    assert created.name == write.name
    assert fresh_stack.counters()["duplicates_prevented"] == 1


def test_dropped_connection_during_a_read_is_plainly_retryable(fresh_stack: Stack) -> None:
    created = fresh_stack.create()
    fresh_stack.sandbox.admin.set_faults(drop_rate=1.0, drop_mode="before", fault_target="reads")
    with pytest.raises(QboRetryable) as caught:
        fresh_stack.gateway.read(fresh_stack.realm_id, created.id)
    assert not isinstance(caught.value, QboOutcomeUnknown)


def test_request_timeout_is_enforced(fresh_sandbox: Any) -> None:
    stack = build_stack(fresh_sandbox, timeout_s=0.3)
    created = stack.create()
    fresh_sandbox.admin.set_faults(latency_ms=2000)
    started = time.monotonic()
    with pytest.raises(QboRetryable) as read_error:
        stack.gateway.read(stack.realm_id, created.id)
    assert time.monotonic() - started < 1.5
    assert not isinstance(read_error.value, QboOutcomeUnknown)
    with pytest.raises(QboOutcomeUnknown, match="did not answer in time"):
        stack.create()


def test_every_call_logs_one_qbo_call_line(stack: Stack) -> None:
    with capture_logs() as logs:
        created = stack.create()
        stack.gateway.read(stack.realm_id, created.id)
        with pytest.raises(QboError):
            stack.gateway.read(stack.realm_id, "987654321")
    calls = [e for e in logs if e["event"] == "qbo_call"]
    assert [c["operation"] for c in calls] == ["create", "read", "read"]
    assert [c["status"] for c in calls] == ["ok", "ok", "QboNotFound"]
    assert calls[2]["code"] == "610"
    assert all(c["realm_id"] == stack.realm_id and c["latency_ms"] >= 0 for c in calls)
    assert calls[0]["http_status"] == 200
