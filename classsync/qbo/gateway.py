"""QuickbooksGateway: Class create/update/read/find/batch against QBO, with errors classified."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

import structlog
from quickbooks import QuickBooks
from quickbooks.objects.trackingclass import Class

from classsync.domain import ChangePage, ClassWrite, QboAuthExpired, QboClass, QboError
from classsync.qbo.endpoints import (
    allow_plain_http_if_loopback,
    require_https_unless_loopback,
    resolve_api_base_url,
)
from classsync.qbo.errors import classify
from classsync.qbo.http_session import LastResponse, TimeoutAdapter, quiet_token_loggers
from classsync.qbo.sdk_clients import QuickbooksClients
from classsync.qbo.sdk_mapping import (
    MAX_BATCH_ITEMS,
    all_classes_query,
    batch_request_body,
    batch_request_id,
    batch_results,
    cdc_page,
    class_for,
    find_by_name_queries,
    qbo_time,
    query_page,
    save_class,
    to_qbo_class,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")


# The sync layer will own these two protocols (classsync/sync/ports.py); they stay here until the
# engine imports them from there.
class AccessTokens(Protocol):
    """The part of ``TokenManager`` the gateway uses."""

    def access_token(self, realm_id: str) -> str:
        """A usable access token for the realm."""
        ...

    def refresh_after_401(self, realm_id: str, rejected_access_token: str) -> str:
        """A new access token after QBO rejected one."""
        ...


class QuickbooksGateway:
    """``classsync.sync.ports.QboGateway`` over python-quickbooks 0.9.12, with the SDK's traps handled.

    Args:
        tokens: hands out access tokens and refreshes after a 401 (a ``TokenManager``).
        api_base_url: accounting API base (``…/v3``); None derives it from ``environment``.
            ``http://`` is accepted only on loopback (the local sandbox).
        environment: ``sandbox``, ``production`` or a discovery URL (the API is then beside it).
        minor_version: sent on every request (docs/qbo.md, "Minor versions").
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
        base_url = resolve_api_base_url(environment, api_base_url)
        require_https_unless_loopback(base_url)
        allow_plain_http_if_loopback(base_url)
        quiet_token_loggers()
        self._last_response = LastResponse()
        self._clients = QuickbooksClients(
            api_base_url=base_url,
            environment=environment,
            client_id=client_id,
            minor_version=minor_version,
            adapter=TimeoutAdapter((min(connect_timeout_s, timeout_s), timeout_s), pool_size),
            last_response=self._last_response,
        )

    # -- QboGateway ---------------------------------------------------------------------------

    def create(self, realm_id: str, write: ClassWrite) -> QboClass:
        """Create a Class; ``write.request_id`` is sent as QBO's ``requestid``."""
        if write.qbo_id is not None:
            raise ValueError("create() got a write with a qbo_id; use update()")
        saved = self._call(
            realm_id,
            "create",
            lambda qb: save_class(class_for(write), qb, write.request_id),
            sent=True,
        )
        return to_qbo_class(saved)

    def update(self, realm_id: str, write: ClassWrite) -> QboClass:
        """Full or sparse update; returns the Class with QBO's new SyncToken."""
        if write.qbo_id is None:
            raise ValueError("update() needs write.qbo_id; use create()")
        class_for(write)  # validate before any network work
        operation = "sparse_update" if write.sparse else "update"
        saved = self._call(
            realm_id,
            operation,
            lambda qb: save_class(class_for(write), qb, write.request_id),
            sent=True,
        )
        return to_qbo_class(saved)

    def read(self, realm_id: str, qbo_id: str) -> QboClass:
        """Read one Class by Id (``QboNotFound`` when QBO has none)."""
        obj = self._call(realm_id, "read", lambda qb: Class.get(qbo_id, qb=qb), sent=False)
        return to_qbo_class(obj)

    def find_by_name(self, realm_id: str, fully_qualified_name: str) -> QboClass | None:
        """Find a Class by FullyQualifiedName, looking at active ones first, then inactive ones."""
        for select in find_by_name_queries(fully_qualified_name):
            found = self._query(realm_id, select)
            if found:
                return to_qbo_class(found[0])
        return None

    def batch_write(self, realm_id: str, writes: Sequence[ClassWrite]) -> list[QboClass | QboError]:
        """Creates and updates in one batch request; per-item faults are classified, not raised.

        Items cannot see each other's results (a parent and its child need two batches;
        docs/qbo.md, "Batch"). A failure of the whole request (throttle, timeout, 401 twice) is
        raised. When every item carries a request id, the batch gets a deterministic requestid.
        """
        if not writes:
            return []
        if len(writes) > MAX_BATCH_ITEMS:
            raise ValueError(f"a batch holds at most {MAX_BATCH_ITEMS} items, got {len(writes)}")
        body = batch_request_body(writes)
        request_id = batch_request_id(writes)

        def send(qb: QuickBooks) -> Any:
            return qb.post(f"{qb.api_url}/company/{realm_id}/batch", body, request_id=request_id)

        answer = self._call(realm_id, "batch", send, sent=True)
        return batch_results(answer, len(writes))

    # -- QboChangeFeed ------------------------------------------------------------------------

    def list_changed(self, realm_id: str, changed_since: datetime) -> ChangePage:
        """CDC for Class since ``changed_since`` (naive UTC); docs/qbo.md, "CDC and webhooks"."""
        since = qbo_time(changed_since)
        answer = self._call(
            realm_id, "cdc", lambda qb: qb.change_data_capture("Class", since), sent=False
        )
        return cdc_page(answer)

    def query_page(self, realm_id: str, start_position: int, max_results: int) -> ChangePage:
        """One page of every Class, active and inactive, in Id order."""
        select = all_classes_query(start_position, max_results)
        answer = self._call(realm_id, "query", lambda qb: qb.query(select), sent=False)
        return query_page(answer)

    # -- one SDK call -------------------------------------------------------------------------

    def _query(self, realm_id: str, select: str) -> list[Any]:
        def run(qb: QuickBooks) -> list[Any]:
            return list(Class.query(select, qb=qb))

        return self._call(realm_id, "query", run, sent=False)

    def _call(
        self, realm_id: str, operation: str, action: Callable[[QuickBooks], T], *, sent: bool
    ) -> T:
        """Run one SDK call; classify failures; on a 401 refresh once and retry once."""
        for attempt in (1, 2):
            access_token = self._tokens.access_token(realm_id)
            qb = self._clients.client(realm_id, access_token)
            self._last_response.forget()
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

    def _classify(self, exc: BaseException, *, sent: bool, secrets: Sequence[str]) -> QboError:
        facts = self._last_response.facts()
        error = classify(exc, sent=sent, status=facts.status, retry_after=facts.retry_after)
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
        facts = self._last_response.facts()
        fields: dict[str, Any] = {
            "realm_id": realm_id,
            "operation": operation,
            "status": "ok" if error is None else type(error).__name__,
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        }
        if error is not None and error.code:
            fields["code"] = error.code
        if facts.status is not None:
            fields["http_status"] = facts.status
        if facts.intuit_tid:
            fields["intuit_tid"] = facts.intuit_tid
        log.info("qbo_call", **fields)


__all__ = ["AccessTokens", "QuickbooksGateway"]
