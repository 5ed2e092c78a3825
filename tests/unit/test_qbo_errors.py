"""QBO failure classification: every HTTP 5xx is a QboServerError, 429 stays throttled (no I/O)."""

from __future__ import annotations

import json

import pytest
import requests
from intuitlib.exceptions import AuthClientError
from quickbooks.exceptions import QuickbooksException, SevereException

from classsync.domain import (
    QboAdapterCrashed,
    QboDisconnected,
    QboOutcomeUnknown,
    QboRejected,
    QboRetryable,
    QboServerError,
    QboStaleSyncToken,
    QboThrottled,
)
from classsync.qbo.errors import classify, from_fault

pytestmark = pytest.mark.unit

SERVER_STATUSES = [500, 502, 503, 504]
HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head>"
    "<body><h1>Service Unavailable</h1></body></html>"
)


def _unreadable(body: str) -> QuickbooksException:
    """What python-quickbooks raises when a non-200 body is not JSON."""
    return QuickbooksException(f"Error reading json response: {body}", 10000)


def _json_fault(code: int, message: str, detail: str = "") -> QuickbooksException:
    """What python-quickbooks raises for a JSON Fault (SevereException for codes >= 10000)."""
    kind = SevereException if code >= 10000 else QuickbooksException
    return kind(message, code, detail)


@pytest.mark.parametrize("status", SERVER_STATUSES)
@pytest.mark.parametrize("body", [HTML_PAGE, "Service error", ""])
def test_non_json_5xx_bodies_are_server_errors(status: int, body: str) -> None:
    error = classify(_unreadable(body), sent=True, status=status)
    assert type(error) is QboServerError
    assert error.status == status
    assert f"HTTP {status}" in str(error)
    assert "<html" not in str(error).lower()


@pytest.mark.parametrize("status", SERVER_STATUSES)
def test_json_fault_on_5xx_is_a_server_error(status: int) -> None:
    exc = _json_fault(10000, "An application error has occurred", "System Failure Error")
    error = classify(exc, sent=True, status=status)
    assert type(error) is QboServerError
    assert error.status == status
    assert error.code == "10000"


def test_a_validation_code_on_a_5xx_answer_is_still_qbos_trouble() -> None:
    error = classify(_json_fault(6000, "A business validation error"), sent=True, status=500)
    assert type(error) is QboServerError
    # The same fault on a 400 is a verdict on our payload.
    assert isinstance(
        classify(_json_fault(6000, "A business validation error"), sent=True, status=400),
        QboRejected,
    )


@pytest.mark.parametrize("status", SERVER_STATUSES)
def test_status_read_from_the_sdk_message_when_the_response_was_not_seen(status: int) -> None:
    exc = QuickbooksException(
        f"Error returned with status code '{status}': {json.dumps({'unexpected': True})}", 10000
    )
    error = classify(exc, sent=False, status=None)
    assert type(error) is QboServerError
    assert error.status == status


def test_fault_without_code_and_unreadable_fault_on_5xx_are_server_errors() -> None:
    no_code = from_fault(None, "Something failed", status=502)
    assert type(no_code) is QboServerError
    assert no_code.status == 502
    unreadable = classify(TypeError("'<' not supported"), sent=True, status=503)
    assert type(unreadable) is QboServerError
    assert unreadable.status == 503


def test_429_stays_throttled_in_every_body_shape() -> None:
    html = classify(_unreadable(HTML_PAGE), sent=True, status=429, retry_after=7.0)
    assert type(html) is QboThrottled
    assert html.retry_after == 7.0
    xml = '<IntuitResponse><Fault><Error code="3001"><Message>ThrottleExceeded</Message>'
    assert type(classify(_unreadable(xml), sent=True, status=None)) is QboThrottled
    assert type(classify(_json_fault(3001, "ThrottleExceeded"), sent=True, status=429)) is (
        QboThrottled
    )


def test_specific_faults_keep_their_meaning() -> None:
    stale = classify(_json_fault(5010, "Stale Object Error"), sent=True, status=400)
    assert type(stale) is QboStaleSyncToken


def test_answers_without_a_5xx_status_are_not_server_errors() -> None:
    unknown_status = classify(_json_fault(10000, "An application error"), sent=True, status=None)
    assert type(unknown_status) is QboRetryable
    unreadable_200 = classify(_unreadable("not json"), sent=False, status=None)
    assert type(unreadable_200) is QboRetryable
    bad_request_page = classify(_unreadable(HTML_PAGE), sent=False, status=400)
    assert not isinstance(bad_request_page, QboServerError)


def test_transport_failures_are_unchanged() -> None:
    refused = requests.ConnectionError(ConnectionRefusedError(111, "Connection refused"))
    assert type(classify(refused, sent=True)) is QboRetryable
    assert type(classify(requests.ReadTimeout("read timed out"), sent=True)) is QboOutcomeUnknown
    assert type(classify(requests.ReadTimeout("read timed out"), sent=False)) is QboRetryable


def _token_endpoint_error(status: int, body: dict[str, str] | None = None) -> AuthClientError:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode() if body else b""
    return AuthClientError(response)


@pytest.mark.parametrize("status", SERVER_STATUSES)
def test_token_endpoint_5xx_is_a_server_error(status: int) -> None:
    error = classify(_token_endpoint_error(status), sent=False)
    assert type(error) is QboServerError
    assert error.status == status


def test_token_endpoint_invalid_grant_and_429() -> None:
    refused = classify(_token_endpoint_error(400, {"error": "invalid_grant"}), sent=False)
    assert type(refused) is QboDisconnected
    assert type(classify(_token_endpoint_error(429), sent=False)) is QboThrottled


def test_an_unexpected_exception_in_the_adapter_is_ours_not_qbo_unavailable() -> None:
    error = classify(
        AttributeError("'NoneType' object has no attribute 'Id'"), sent=True, status=None
    )
    assert isinstance(error, QboAdapterCrashed)
    assert error.error_code == "INTERNAL_ERROR"
    assert str(error) == "unexpected AttributeError while calling QBO"
