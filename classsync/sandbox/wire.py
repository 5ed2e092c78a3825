"""QBO wire shapes: timestamps, the Fault envelope, 401/429/5xx bodies (docs/qbo.md, "Errors")."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

JSON_TYPE = "application/json"
XML_TYPE = "application/xml"
HTML_TYPE = "text/html"


def iso_seconds(epoch: float) -> str:
    """QBO MetaData time: seconds precision with an offset (the sandbox keeps UTC)."""
    return datetime.fromtimestamp(int(epoch), tz=UTC).isoformat(timespec="seconds")


def iso_millis(epoch: float | None = None) -> str:
    """The ``time`` member of every response envelope."""
    stamp = time.time() if epoch is None else epoch
    return datetime.fromtimestamp(stamp, tz=UTC).isoformat(timespec="milliseconds")


def parse_time(text: str) -> float:
    """Parse a QBO timestamp into epoch seconds. A value without offset is taken as UTC.

    python-quickbooks formats datetimes with no offset (docs/qbo.md, "CDC and webhooks").
    """
    value = text.strip().replace("Z", "+00:00")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


class QboFaultError(Exception):
    """A QBO business or validation fault; becomes a Fault body (HTTP 400 unless told)."""

    def __init__(
        self,
        code: int,
        message: str,
        detail: str,
        *,
        element: str = "",
        fault_type: str = "ValidationFault",
        status: int = 400,
    ) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.detail = detail
        self.element = element
        self.fault_type = fault_type
        self.status = status

    def fault(self) -> dict[str, Any]:
        """The ``Fault`` object (used alone inside batch item responses)."""
        return {
            "Error": [
                {
                    "Message": self.message,
                    "Detail": self.detail,
                    "code": str(self.code),  # QBO sends the code as a string
                    "element": self.element,
                }
            ],
            "type": self.fault_type,
        }

    def body(self) -> dict[str, Any]:
        """The full response body."""
        return {"Fault": self.fault(), "time": iso_millis()}


# --- The faults the Class API uses. Texts follow Intuit's wording where it is known
# (docs/qbo.md, "Errors").


def required_missing(element: str) -> QboFaultError:
    """2020: a required field is missing."""
    return QboFaultError(
        2020,
        "Required param missing, need to supply the required value for the API",
        f"Required parameter {element} is missing in the request",
        element=element,
    )


def invalid_string(element: str, why: str) -> QboFaultError:
    """2040: unsupported or illegal characters."""
    return QboFaultError(
        2040,
        "Invalid String",
        f"String contains unsupported or illegal characters: {why}",
        element=element,
    )


def bad_length(element: str, maximum: int, supplied: int) -> QboFaultError:
    """2050: a string is too short or too long."""
    return QboFaultError(
        2050,
        "String length is either shorter or longer than supported by specification",
        f"Min:1 Max:{maximum} supported. Supplied length:{supplied}",
        element=element,
    )


def object_not_found(object_id: str) -> QboFaultError:
    """610: unknown (or unusable) Id."""
    return QboFaultError(
        610,
        "Object Not Found",
        f"Object Not Found : Something you're trying to use has been made inactive. "
        f"Check the fields with accounts, customers, items, vendors or employees. (Id={object_id})",
    )


def invalid_reference(code: int, element: str, ref: str) -> QboFaultError:
    """2500 (or 610, configurable): a reference to a missing or inactive object."""
    if code == 610:
        return object_not_found(ref)
    return QboFaultError(
        code,
        "Invalid Reference Id",
        f"Invalid Reference Id : Something you're trying to use has been made inactive. "
        f"Check the fields with accounts, customers, items, vendors or employees. "
        f"({element}={ref})",
        element=element,
    )


def duplicate_name(name: str) -> QboFaultError:
    """6240: the name is in use."""
    return QboFaultError(
        6240,
        "Duplicate Name Exists Error",
        f"The name supplied already exists. : Another class is already using this name: {name}",
        element="Name",
    )


def stale_object(current: int) -> QboFaultError:
    """5010: the SyncToken sent is not the current one."""
    return QboFaultError(
        5010,
        "Stale Object Error",
        "Stale Object Error : You and sandbox were working on this at the same time. sandbox "
        f"finished before you did, so your work was not saved. (current SyncToken {current})",
    )


def business_rule(detail: str, code: int = 6000) -> QboFaultError:
    """6000 (by default): a business validation error."""
    return QboFaultError(
        code,
        "A business validation error has occurred while processing your request",
        f"Business Validation Error: {detail}",
    )


def bad_request(detail: str, code: int = 4000) -> QboFaultError:
    """4000: the request could not be parsed (query syntax, JSON, unknown entity)."""
    return QboFaultError(
        code, "Error parsing query" if code == 4000 else "Request is invalid", detail
    )


def unsupported(detail: str) -> QboFaultError:
    """500: an operation QBO does not offer for Class (e.g. delete)."""
    return QboFaultError(500, "Unsupported Operation", detail)


# --- Bodies produced outside the Class rules.


def auth_failed_body(detail: str) -> dict[str, Any]:
    """HTTP 401 body: lowercase ``fault`` envelope of the Accounting API (docs/qbo.md)."""
    return {
        "warnings": None,
        "intuitObject": None,
        "fault": {
            "error": [
                {
                    "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                    "detail": detail,
                    "code": "3200",
                    "element": None,
                }
            ],
            "type": "AUTHENTICATION",
        },
        "report": None,
        "queryResponse": None,
        "batchItemResponse": [],
        "time": int(time.time() * 1000),
        "cdcresponse": [],
    }


def forbidden_body(detail: str) -> dict[str, Any]:
    """HTTP 403 body for a token used on another realm (errorCode 003100)."""
    body = auth_failed_body(detail)
    body["fault"]["error"][0]["message"] = (
        "message=AuthorizationFailed; errorCode=003100; statusCode=403"
    )
    body["fault"]["error"][0]["code"] = "3100"
    body["fault"]["type"] = "AUTHORIZATION"
    return body


_THROTTLE_MESSAGE = "message=ThrottleExceeded; errorCode=003001; statusCode=429"
_THROTTLE_DETAIL = "The request limit was reached.  Try again later"


def throttle_body(kind: str, reason: str) -> tuple[bytes, str]:
    """HTTP 429 body in JSON or in the XML QBO has been reported to send."""
    if kind == "json":
        body = {
            "Fault": {
                "Error": [
                    {
                        "Message": _THROTTLE_MESSAGE,
                        "Detail": f"{_THROTTLE_DETAIL} ({reason})",
                        "code": "3001",
                        "element": "",
                    }
                ],
                "type": "SERVICE",
            },
            "time": iso_millis(),
        }
        return json.dumps(body).encode(), JSON_TYPE
    xml = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time="{iso_millis()}">'
        '<Fault type="SERVICE"><Error code="3001">'
        f"<Message>{_THROTTLE_MESSAGE}</Message>"
        f"<Detail>{_THROTTLE_DETAIL} ({reason})</Detail>"
        "</Error></Fault></IntuitResponse>"
    )
    return xml.encode(), XML_TYPE


def server_error_body(kind: str, status: int) -> tuple[bytes, str]:
    """Body of an injected 500/503: HTML (the likely real case), JSON Fault, text or empty."""
    if kind == "json":
        body = QboFaultError(
            10000,
            "An application error has occurred while processing your request",
            f"System Failure Error: sandbox injected HTTP {status}",
            fault_type="SystemFault",
            status=status,
        ).body()
        return json.dumps(body).encode(), JSON_TYPE
    if kind == "text":
        return f"Service error {status}".encode(), "text/plain"
    if kind == "empty":
        return b"", "text/plain"
    title = "Service Unavailable" if status == 503 else "Internal Server Error"
    html = (
        f"<!DOCTYPE html><html><head><title>{status} {title}</title></head>"
        f"<body><h1>{title}</h1><p>The server is temporarily unable to service your "
        "request. Please try again later.</p></body></html>"
    )
    return html.encode(), HTML_TYPE
