"""QBO Class calls through python-quickbooks: the only module that imports ``quickbooks``."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import requests
import structlog
from quickbooks import QuickBooks
from quickbooks.objects.base import Ref
from quickbooks.objects.trackingclass import Class
from requests.adapters import HTTPAdapter

from classsync.domain import (
    ClassWrite,
    QboAuthExpired,
    QboClass,
    QboError,
    QboOutcomeUnknown,
)
from classsync.qbo.errors import classify, from_fault, parse_retry_after

log = structlog.get_logger(__name__)

T = TypeVar("T")

# python-quickbooks' own base URLs (qbo-reference §1.6).
PRODUCTION_API_BASE_URL = "https://quickbooks.api.intuit.com/v3"
SANDBOX_API_BASE_URL = "https://sandbox-quickbooks.api.intuit.com/v3"
# Recommended maximum items per batch request (qbo-reference §4).
MAX_BATCH_ITEMS = 30
# Fixed namespace so a batch made of the same item request ids always gets the same requestid.
_BATCH_NAMESPACE = uuid.UUID("6f1d2d43-5b7e-4f55-9a4c-3f1e0c9a2b61")


class QboGateway(Protocol):
    """What the sync engine needs from QBO for Classes; raises only domain ``QboError``s."""

    def create(self, realm_id: str, write: ClassWrite) -> QboClass:
        """Create a Class (``write.qbo_id`` is None); ``write.request_id`` makes it idempotent."""
        ...

    def update(self, realm_id: str, write: ClassWrite) -> QboClass:
        """Update a Class by Id + SyncToken; a sparse update when ``write.sparse``."""
        ...

    def read(self, realm_id: str, qbo_id: str) -> QboClass:
        """Read one Class by Id."""
        ...

    def find_by_name(self, realm_id: str, fully_qualified_name: str) -> QboClass | None:
        """The Class with this FullyQualifiedName, active or inactive, if any."""
        ...

    def batch_write(self, realm_id: str, writes: Sequence[ClassWrite]) -> list[QboClass | QboError]:
        """Up to 30 creates/updates in one request; results in input order, faults per item."""
        ...


class AccessTokens(Protocol):
    """The part of ``TokenManager`` the gateway uses."""

    def access_token(self, realm_id: str) -> str:
        """A usable access token for the realm."""
        ...

    def refresh_after_401(self, realm_id: str, rejected_access_token: str) -> str:
        """A new access token after QBO rejected one."""
        ...


@dataclass(frozen=True, slots=True)
class _SessionCredentials:
    """Exactly what ``QuickBooks(auth_client=...)`` reads from its auth client (qbo-reference §5.4).

    With ``access_token`` set the constructor never calls the token endpoint, so it can neither
    refresh on its own nor rotate a refresh token behind the TokenManager's back (§5.4, §8 item 1).
    Using this instead of an intuitlib ``AuthClient`` also avoids the discovery request that the
    AuthClient constructor makes (§5.3), which matters on the hot path.
    """

    client_id: str
    environment: str
    access_token: str
    refresh_token: None = None


class _TimeoutAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` that applies a default timeout.

    python-quickbooks calls ``session.request`` without ``timeout=`` (qbo-reference §2.3), so a
    stuck QBO would hang a worker forever. Mounting an adapter on the session is ordinary requests
    configuration. One adapter (one connection pool) is shared by every client the gateway builds,
    so a rebuilt client (new token) keeps its warm connections.
    """

    def __init__(self, timeout: tuple[float, float], pool_size: int) -> None:
        # max_retries=0: never resend a POST on our own; the sync engine decides (requestid, §3).
        super().__init__(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self._timeout = timeout

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send with our timeout unless the caller gave one."""
        return super().send(
            request,
            stream=stream,
            timeout=self._timeout if timeout is None else timeout,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )


def resolve_api_base_url(environment: str, api_base_url: str | None) -> str:
    """The accounting API base (``…/v3``) for an environment, unless given explicitly.

    python-quickbooks picks its sandbox URL only when the environment is exactly ``"sandbox"``
    (qbo-reference §5.4), so the choice is made here, case-insensitively, and always set explicitly.
    """
    if api_base_url:
        return api_base_url.rstrip("/")
    name = environment.strip().lower()
    if name in ("production", "prod"):
        return PRODUCTION_API_BASE_URL
    if name in ("sandbox", "sand"):
        return SANDBOX_API_BASE_URL
    raise ValueError(
        f"QBO environment {environment!r} is a discovery URL; give the API base URL too "
        "(QBO_API_BASE_URL)"
    )


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _allow_plain_http_if_loopback(base_url: str) -> None:
    """requests-oauthlib refuses http:// unless OAUTHLIB_INSECURE_TRANSPORT=1 (qbo-reference §5.4).

    Allowed only for the local sandbox on loopback (design.md §6); never for anything remote.
    """
    parts = urlsplit(base_url)
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and _is_loopback(parts.hostname):
        os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
        return
    raise ValueError(f"refusing QBO API base URL {base_url!r}: use https (http only on loopback)")


def _quiet_token_loggers() -> None:
    """requests-oauthlib logs the token and the headers at DEBUG; keep those loggers above it."""
    for name in ("requests_oauthlib", "oauthlib"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)


def escape_query_value(value: str) -> str:
    """Escape a string for a QBO query literal: backslash, then ``'`` (qbo-reference §1.1)."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _to_qbo_class(obj: Any) -> QboClass:
    parent = getattr(obj, "ParentRef", None)
    parent_id = parent.get("value") if isinstance(parent, dict) else getattr(parent, "value", None)
    name = str(obj.Name or "")
    return QboClass(
        id=str(obj.Id),
        sync_token=str(obj.SyncToken),
        name=name,
        fully_qualified_name=str(getattr(obj, "FullyQualifiedName", "") or name),
        active=bool(obj.Active),
        parent_id=str(parent_id) if parent_id else None,
    )


def _parent_ref(parent_id: str) -> Ref:
    ref = Ref()
    # The documented body is just {"value": "<Id>"} (qbo-reference §1.2); None drops the rest.
    ref.value = parent_id
    ref.name = None
    ref.type = None
    return ref


def _class_for(write: ClassWrite) -> Class:
    """The python-quickbooks object for one write (create, full update or sparse update)."""
    obj = Class()
    obj.Name = write.name
    obj.Active = write.active
    # Read-only (§1.3): python-quickbooks would send "" otherwise.
    obj.FullyQualifiedName = None
    if write.qbo_id is None:
        obj.SyncToken = None  # creates carry no SyncToken
        obj.SubClass = write.parent_id is not None
        if write.parent_id is not None:
            obj.ParentRef = _parent_ref(write.parent_id)
        return obj
    if write.sync_token is None:
        raise ValueError("an update needs the Class's current SyncToken")
    obj.Id = write.qbo_id
    obj.SyncToken = str(write.sync_token)  # QBO documents it as a string (§1.1, §1.8)
    if write.sparse:
        # Sparse: Id, SyncToken, sparse=true and only the fields we mean to change (§1.5).
        obj.sparse = True
        obj.SubClass = None
        obj.domain = None
        if write.parent_id is not None:
            obj.ParentRef = _parent_ref(write.parent_id)
        return obj
    # Full update: every writable field, since omitted ones are set to NULL (§1.5).
    obj.sparse = False
    obj.SubClass = write.parent_id is not None
    if write.parent_id is not None:
        obj.ParentRef = _parent_ref(write.parent_id)
    return obj


def _save(obj: Class, qb: QuickBooks, request_id: str | None) -> Any:
    """Save; return the object QBO sent back (``obj`` keeps a stale SyncToken, §1.5)."""
    if obj.Id is None or str(obj.Id).isdigit():
        return obj.save(qb=qb, request_id=request_id)
    # save() decides create-vs-update with int(Id); QBO Ids are opaque strings (§1.1, §1.5).
    result = qb.update_object("Class", obj.to_json(), request_id=request_id)
    return Class.from_json(result["Class"])


def _batch_request_id(writes: Sequence[ClassWrite]) -> str | None:
    """A deterministic batch requestid (<= 36 chars, §3) when every item has a request id."""
    ids = [w.request_id for w in writes]
    if not ids or any(not i for i in ids):
        return None
    return str(uuid.uuid5(_BATCH_NAMESPACE, "\n".join(str(i) for i in ids)))


class QuickbooksGateway:
    """``QboGateway`` over python-quickbooks 0.9.12, with the SDK's traps handled.

    Args:
        tokens: hands out access tokens and refreshes after a 401 (a ``TokenManager``).
        api_base_url: accounting API base (``…/v3``); None derives it from ``environment``.
            ``http://`` is accepted only on loopback (the local sandbox).
        environment: ``sandbox``, ``production`` or a discovery URL (then ``api_base_url`` is
            required).
        minor_version: sent on every request (qbo-reference §7).
        timeout_s: read timeout of every QBO request; ``connect_timeout_s`` for connecting.
        client_id: the Intuit app's client id (only labels the OAuth2 session).
        pool_size: HTTP connections kept per host (size it to the sync workers).

    One ``QuickBooks`` client is cached per realm and rebuilt only when the access token
    changes; all share one connection pool. Every call logs one ``qbo_call`` line.
    """

    def __init__(
        self,
        tokens: AccessTokens,
        *,
        api_base_url: str | None,
        environment: str,
        minor_version: int = 75,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        client_id: str = "classsync",
        pool_size: int = 32,
    ) -> None:
        self._tokens = tokens
        self._environment = environment
        self._base_url = resolve_api_base_url(environment, api_base_url)
        _allow_plain_http_if_loopback(self._base_url)
        self._loopback = _is_loopback(urlsplit(self._base_url).hostname)
        _quiet_token_loggers()
        self._minor_version = minor_version
        self._client_id = client_id
        self._adapter = _TimeoutAdapter((min(connect_timeout_s, timeout_s), timeout_s), pool_size)
        self._clients: dict[str, tuple[str, QuickBooks]] = {}
        self._clients_lock = threading.Lock()
        self._last = threading.local()

    @property
    def api_base_url(self) -> str:
        """The accounting API base in use."""
        return self._base_url

    # -- QboGateway ---------------------------------------------------------------------------

    def create(self, realm_id: str, write: ClassWrite) -> QboClass:
        """Create a Class; ``write.request_id`` is sent as QBO's ``requestid`` (§3)."""
        if write.qbo_id is not None:
            raise ValueError("create() got a write with a qbo_id; use update()")
        saved = self._call(
            realm_id, "create", lambda qb: _save(_class_for(write), qb, write.request_id), sent=True
        )
        return _to_qbo_class(saved)

    def update(self, realm_id: str, write: ClassWrite) -> QboClass:
        """Full or sparse update; returns the Class with QBO's new SyncToken."""
        if write.qbo_id is None:
            raise ValueError("update() needs write.qbo_id; use create()")
        _class_for(write)  # validate before any network work
        operation = "sparse_update" if write.sparse else "update"
        saved = self._call(
            realm_id,
            operation,
            lambda qb: _save(_class_for(write), qb, write.request_id),
            sent=True,
        )
        return _to_qbo_class(saved)

    def read(self, realm_id: str, qbo_id: str) -> QboClass:
        """Read one Class by Id (``QboNotFound`` when QBO has none)."""
        obj = self._call(realm_id, "read", lambda qb: Class.get(qbo_id, qb=qb), sent=False)
        return _to_qbo_class(obj)

    def find_by_name(self, realm_id: str, fully_qualified_name: str) -> QboClass | None:
        """Find a Class by FullyQualifiedName, looking at active ones first, then inactive ones.

        A plain query returns active records only (qbo-reference §1.4), so a second query asks for
        ``Active = false`` when the first finds nothing.
        """
        where = f"FullyQualifiedName = '{escape_query_value(fully_qualified_name)}'"
        for select in (
            # Values are escaped above; QBO queries have no bind parameters.
            f"select * from Class where {where}",  # noqa: S608
            f"select * from Class where {where} AND Active = false",  # noqa: S608
        ):
            found = self._query(realm_id, select)
            if found:
                return _to_qbo_class(found[0])
        return None

    def batch_write(self, realm_id: str, writes: Sequence[ClassWrite]) -> list[QboClass | QboError]:
        """Creates and updates in one batch request; per-item faults are classified, not raised.

        Items cannot see each other's results (a parent and its child need two batches, §1.2).
        A failure of the whole request (throttle, timeout, 401 twice) is raised. When every item
        carries a request id, the batch gets a deterministic requestid and bIds "0".."n", so
        retrying the same batch is recognised as the same request (§3).
        """
        if not writes:
            return []
        if len(writes) > MAX_BATCH_ITEMS:
            raise ValueError(f"a batch holds at most {MAX_BATCH_ITEMS} items, got {len(writes)}")
        items = []
        for index, write in enumerate(writes):
            obj = _class_for(write)
            items.append(
                {
                    "bId": str(index),
                    "operation": "create" if write.qbo_id is None else "update",
                    "Class": json.loads(obj.to_json()),
                }
            )
        body = json.dumps({"BatchItemRequest": items})
        request_id = _batch_request_id(writes)

        def send(qb: QuickBooks) -> Any:
            url = f"{qb.api_url}/company/{realm_id}/batch"
            return qb.post(url, body, request_id=request_id)

        answer = self._call(realm_id, "batch", send, sent=True)
        by_bid = {
            str(item.get("bId")): item
            for item in (answer.get("BatchItemResponse") or [])
            if isinstance(item, dict)
        }
        results: list[QboClass | QboError] = []
        for index in range(len(writes)):
            item = by_bid.get(str(index))
            if item is None:
                results.append(QboOutcomeUnknown("QBO's batch answer has no result for this item"))
            elif "Fault" in item:
                errors = (item.get("Fault") or {}).get("Error") or [{}]
                first = errors[0] if isinstance(errors[0], dict) else {}
                results.append(
                    from_fault(first.get("code"), first.get("Message", ""), first.get("Detail", ""))
                )
            elif "Class" in item:
                results.append(_to_qbo_class(Class.from_json(item["Class"])))
            else:
                results.append(QboOutcomeUnknown("QBO's batch item answer holds no Class"))
        return results

    # -- plumbing -----------------------------------------------------------------------------

    def _query(self, realm_id: str, select: str) -> list[Any]:
        def run(qb: QuickBooks) -> list[Any]:
            return list(Class.query(select, qb=qb))

        return self._call(realm_id, "query", run, sent=False)

    def _client(self, realm_id: str, access_token: str) -> QuickBooks:
        with self._clients_lock:
            cached = self._clients.get(realm_id)
        if cached is not None and cached[0] == access_token:
            return cached[1]
        credentials = _SessionCredentials(self._client_id, self._environment, access_token)
        qb = QuickBooks(
            auth_client=credentials, company_id=realm_id, minorversion=self._minor_version
        )
        # Both are class attributes read through `api_url` (§5.4); set per instance, never globally.
        qb.api_url_v3 = self._base_url
        qb.sandbox_api_url_v3 = self._base_url
        qb.session.mount("https://", self._adapter)
        qb.session.mount("http://", self._adapter)
        if self._loopback:
            # Proxy variables and ~/.netrc cannot apply to loopback, and requests re-reads them on
            # every call (measured: about a third of the client's CPU per call). Real QBO keeps
            # them, since a deployment may reach Intuit through an HTTPS proxy.
            qb.session.trust_env = False
        # python-quickbooks drops the HTTP status and headers (§2.3); a response hook on the
        # session keeps them (per thread) for error classification, Retry-After and intuit_tid.
        qb.session.hooks["response"].append(self._remember_response)
        with self._clients_lock:
            self._clients[realm_id] = (access_token, qb)
        return qb

    def _remember_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last.response = response

    def _call(
        self, realm_id: str, operation: str, action: Callable[[QuickBooks], T], *, sent: bool
    ) -> T:
        """Run one SDK call; classify failures; on a 401 refresh once and retry once."""
        for attempt in (1, 2):
            access_token = self._tokens.access_token(realm_id)
            qb = self._client(realm_id, access_token)
            self._last.response = None
            started = time.perf_counter()
            try:
                result = action(qb)
            except Exception as exc:
                error = self._classify(exc, sent=sent, secrets=(access_token,))
                self._log(realm_id, operation, started, error=error)
                if isinstance(error, QboAuthExpired) and attempt == 1:
                    self._tokens.refresh_after_401(realm_id, access_token)
                    continue
                raise error from exc
            self._log(realm_id, operation, started, error=None)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _response_facts(self) -> tuple[int | None, str | None, float | None]:
        response: requests.Response | None = getattr(self._last, "response", None)
        if response is None:
            return None, None, None
        headers = response.headers
        return (
            response.status_code,
            headers.get("intuit_tid"),
            parse_retry_after(headers.get("Retry-After")),
        )

    def _classify(self, exc: BaseException, *, sent: bool, secrets: Sequence[str]) -> QboError:
        status, _tid, retry_after = self._response_facts()
        error = classify(exc, sent=sent, status=status, retry_after=retry_after)
        # Belt and braces: no token text may survive into a message, whatever QBO echoed.
        text = str(error)
        for secret in secrets:
            if secret and secret in text:
                text = text.replace(secret, "[redacted]")
                error.args = (text,)
        return error

    def _log(
        self, realm_id: str, operation: str, started: float, *, error: QboError | None
    ) -> None:
        status, tid, _retry_after = self._response_facts()
        fields: dict[str, Any] = {
            "realm_id": realm_id,
            "operation": operation,
            "status": "ok" if error is None else type(error).__name__,
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        }
        if error is not None and error.code:
            fields["code"] = error.code
        if status is not None:
            fields["http_status"] = status
        if tid:
            fields["intuit_tid"] = tid
        log.info("qbo_call", **fields)


__all__ = [
    "MAX_BATCH_ITEMS",
    "PRODUCTION_API_BASE_URL",
    "SANDBOX_API_BASE_URL",
    "AccessTokens",
    "QboGateway",
    "QuickbooksGateway",
    "escape_query_value",
    "resolve_api_base_url",
]
