"""Map python-quickbooks, intuit-oauth and requests failures onto classsync's QBO error tree."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeGuard

import requests
from urllib3.exceptions import NewConnectionError

from classsync.domain import (
    QboAdapterCrashed,
    QboAuthExpired,
    QboDisconnected,
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

# Error text is bounded: a 503 can carry a whole HTML page, and a message is for humans and logs.
_MAX_TEXT = 300
# python-quickbooks' generic code for "not a QBO fault" (unreadable body, non-200 without Fault);
# docs/qbo.md, "python-quickbooks".
_SDK_GENERIC_CODE = 10000
_UNREADABLE_PREFIX = "Error reading json response"
_STATUS_PREFIX = "Error returned with status code"
_SDK_AUTH_FAILED = "Application authentication failed"
_STATUS_IN_MESSAGE = re.compile(r"status code '?(\d{3})")
# QBO's throttle fault in any body shape (JSON, XML, text): docs/qbo.md, "Limits and throttling".
_THROTTLE_MARKERS = ("ThrottleExceeded", "errorCode=003001", 'code="3001"', "statusCode=429")
_XML_ERROR_CODE = re.compile(r"<Error[^>]*\bcode=\"(\d+)\"", re.IGNORECASE)
_XML_MESSAGE = re.compile(r"<Message>(.*?)</Message>", re.IGNORECASE | re.DOTALL)
_XML_DETAIL = re.compile(r"<Detail>(.*?)</Detail>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"\s+")

# Fault codes with a meaning of their own (docs/qbo.md, "Errors").
_STALE = 5010
_DUPLICATE = 6240
_NOT_FOUND = 610
_INVALID_REFERENCE = 2500
_THROTTLED = frozenset({3001, 429})
# 3200 AuthenticationFailed and HTTP 401; 100 "General Authentication Error" is also a 401
# (docs/qbo.md, "Errors").
_AUTH_EXPIRED = frozenset({3200, 401, 100})


def _clip(text: str) -> str:
    text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


def _is_server_error(status: int | None) -> TypeGuard[int]:
    """True for an HTTP 5xx status."""
    return status is not None and 500 <= status <= 599


def _to_int(code: object) -> int | None:
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.strip().isdigit():
        return int(code.strip())
    return None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), if any."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def from_fault(
    code: object,
    message: str,
    detail: str = "",
    *,
    status: int | None = None,
    retry_after: float | None = None,
) -> QboError:
    """Classify one QBO fault (``Fault.Error[0]``) by its integer code (docs/qbo.md, "Errors").

    python-quickbooks picks exception classes by code *range* (5010 and 6240 both land on the base
    ``QuickbooksException``; docs/qbo.md, "python-quickbooks"), so the code, not the exception
    type, decides here. A fault that came with HTTP ``status`` 5xx and has no specific meaning is
    a ``QboServerError``.
    """
    number = _to_int(code)
    text = _clip(f"QBO fault {code}: {message}" + (f" - {detail}" if detail else ""))
    clean_detail = _clip(detail)
    if number is None:
        # A Fault without a usable code: nothing says the write was refused for good.
        no_code = _clip(f"QBO returned a fault without an error code: {message} {detail}")
        if _is_server_error(status):
            return QboServerError(no_code, status=status)
        return QboRetryable(no_code)
    code_text = str(number)
    if number in _THROTTLED or status == 429:
        return QboThrottled(text, retry_after=retry_after, code=code_text)
    if number in _AUTH_EXPIRED or status == 401:
        return QboAuthExpired(text, code=code_text, detail=clean_detail)
    if number == _STALE:
        return QboStaleSyncToken(text, code=code_text, detail=clean_detail)
    if number == _DUPLICATE:
        return QboDuplicateName(text, code=code_text, detail=clean_detail)
    if number == _NOT_FOUND:
        return QboNotFound(text, code=code_text, detail=clean_detail)
    if number == _INVALID_REFERENCE:
        return QboInvalidReference(text, code=code_text, detail=clean_detail)
    if _is_server_error(status):
        # A fault on a 5xx answer is QBO's own trouble, not a verdict on our payload.
        return QboServerError(text, status=status, code=code_text, detail=clean_detail)
    if 1 <= number <= 9999:
        return QboRejected(text, code=code_text, detail=clean_detail)
    # >= 10000: QBO's "application error" family, server side (python-quickbooks SevereException).
    return QboRetryable(text, code=code_text, detail=clean_detail)


def _from_body(body: str, *, status: int | None, retry_after: float | None) -> QboError:
    """Classify a non-JSON (or Fault-less) error body: XML faults, HTML 5xx pages, plain text."""
    if status == 429 or any(marker in body for marker in _THROTTLE_MARKERS):
        # ThrottleExceeded arrives as XML despite Accept: application/json (docs/qbo.md,
        # "Limits and throttling").
        return QboThrottled(
            _clip("QBO throttled the request (HTTP 429 / ThrottleExceeded)"),
            retry_after=retry_after,
        )
    xml_code = _XML_ERROR_CODE.search(body)
    if xml_code:
        message = _XML_MESSAGE.search(body)
        detail = _XML_DETAIL.search(body)
        return from_fault(
            xml_code.group(1),
            message.group(1) if message else "",
            detail.group(1) if detail else "",
            status=status,
            retry_after=retry_after,
        )
    status_text = f"HTTP {status}" if status else "an unreadable answer"
    snippet = _clip(_TAGS.sub(" ", body))
    summary = _clip(f"QBO returned {status_text}: {snippet}")
    if _is_server_error(status):
        # HTML/plain 5xx pages come from QBO's front end, not from the API: no fault code.
        return QboServerError(summary, status=status)
    return QboRetryable(summary)


def _auth_failed(detail: str) -> QboAuthExpired:
    """HTTP 401: the body uses lowercase ``fault.error[]`` keys (docs/qbo.md, "Errors")."""
    message = "QBO refused the access token (HTTP 401)"
    code = "401"
    try:
        parsed = json.loads(detail) if detail else None
    except ValueError:
        parsed = None
    if isinstance(parsed, Mapping):
        fault = parsed.get("fault") or parsed.get("Fault")
        errors: object = []
        if isinstance(fault, Mapping):
            errors = fault.get("error") or fault.get("Error") or []
        if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
            first = errors[0]
            code = str(first.get("code") or code)
            text = first.get("message") or first.get("Message") or ""
            more = first.get("detail") or first.get("Detail") or ""
            message = _clip(f"{message}: {text}" + (f" - {more}" if more else ""))
    return QboAuthExpired(message, code=code)


def _never_connected(exc: BaseException) -> bool:
    """True when the TCP connection was never made, so the request cannot have reached QBO."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        item = pending.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, NewConnectionError | ConnectionRefusedError):
            return True
        pending.extend(item.args)
        pending.append(getattr(item, "reason", None))
        pending.extend([item.__cause__, item.__context__])
    return False


def _from_transport(exc: requests.RequestException, *, sent: bool) -> QboError:
    what = type(exc).__name__
    if _never_connected(exc):
        return QboRetryable(_clip(f"could not connect to QBO ({what})"))
    if not sent:
        return QboRetryable(_clip(f"QBO request failed ({what}); it changed nothing"))
    if isinstance(exc, requests.Timeout):
        return QboOutcomeUnknown(
            _clip(f"QBO did not answer in time ({what}); the write may have been applied")
        )
    return QboOutcomeUnknown(
        _clip(
            f"the connection to QBO failed after the request was sent ({what}); "
            "the write may have been applied"
        )
    )


def _from_token_endpoint(exc: BaseException) -> QboError:
    """intuitlib ``AuthClientError`` (token endpoint answered non-200); docs/qbo.md, "OAuth tokens"."""
    status = getattr(exc, "status_code", None)
    content = getattr(exc, "content", b"") or b""
    body = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)
    error = ""
    try:
        parsed = json.loads(body) if body else None
        if isinstance(parsed, Mapping):
            error = str(parsed.get("error") or "")
    except ValueError:
        pass
    if error == "invalid_grant":
        return QboDisconnected(
            "QBO refused the refresh token (invalid_grant)", code="invalid_grant"
        )
    if error == "invalid_client" or status == 401:
        return QboError(
            "the QBO token endpoint refused the app's client id/secret (invalid_client); "
            "check QBO_CLIENT_ID and QBO_CLIENT_SECRET"
        )
    if status == 429:
        return QboThrottled("the QBO token endpoint throttled the request (HTTP 429)", code="429")
    if _is_server_error(status):
        return QboServerError(f"the QBO token endpoint answered HTTP {status}", status=status)
    return QboError(_clip(f"the QBO token endpoint answered HTTP {status}: {error or 'no error'}"))


def _module_of(exc: BaseException) -> str:
    return type(exc).__module__ or ""


def classify(
    exc: BaseException,
    *,
    sent: bool,
    status: int | None = None,
    retry_after: float | None = None,
) -> QboError:
    """Turn any failure of a QBO call into a domain ``QboError``.

    ``sent`` says whether a timeout or dropped connection may have let the request reach QBO (True
    for writes): then the outcome is unknown rather than simply retryable. ``status`` and
    ``retry_after`` come from the HTTP response when the caller could see it (python-quickbooks
    hides both; the gateway reads them with a requests response hook). Messages carry QBO's
    Message/Detail, never a token or header.
    """
    if isinstance(exc, QboError):
        return exc
    module = _module_of(exc)
    if module.startswith("quickbooks"):
        code = getattr(exc, "error_code", None)
        message = str(getattr(exc, "message", "") or "")
        detail = str(getattr(exc, "detail", "") or "")
        if code == 401 and message == _SDK_AUTH_FAILED:
            # make_request's own HTTP 401 check; detail is the raw lowercase-keyed body
            # (docs/qbo.md, "python-quickbooks").
            return _auth_failed(detail)
        if code == _SDK_GENERIC_CODE and message.startswith(_UNREADABLE_PREFIX):
            body = message[len(_UNREADABLE_PREFIX) :].lstrip(": ")
            return _from_body(body, status=status, retry_after=retry_after)
        if code == _SDK_GENERIC_CODE and message.startswith(_STATUS_PREFIX):
            found = _STATUS_IN_MESSAGE.search(message)
            http_status = status or (int(found.group(1)) if found else None)
            return _from_body(message, status=http_status, retry_after=retry_after)
        return from_fault(code, message, detail, status=status, retry_after=retry_after)
    if module.startswith("intuitlib"):
        return _from_token_endpoint(exc)
    if isinstance(exc, requests.RequestException):
        return _from_transport(exc, sent=sent)
    if module.startswith("oauthlib") and type(exc).__name__ == "InsecureTransportError":
        return QboError("refusing to send a token over plain http to a non-loopback QBO endpoint")
    if isinstance(exc, TypeError | KeyError):
        # handle_exceptions compares `0 < ""` when a Fault error has no code, and indexes
        # error["Message"] blindly (docs/qbo.md, "python-quickbooks"): an unreadable fault, not a
        # verdict on our payload.
        unreadable = (
            f"QBO returned a fault python-quickbooks could not read ({type(exc).__name__}: "
            "missing code or message)"
        )
        if _is_server_error(status):
            return QboServerError(unreadable, status=status)
        return QboRetryable(unreadable)
    return QboAdapterCrashed(f"unexpected {type(exc).__name__} while calling QBO")
