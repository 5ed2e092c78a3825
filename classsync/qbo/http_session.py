"""requests plumbing under the SDKs: a default timeout, the last response per thread, quiet loggers."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from classsync.qbo.errors import parse_retry_after


class TimeoutAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` that applies a default timeout and never retries on its own.

    python-quickbooks calls ``session.request`` without ``timeout=`` (docs/qbo.md,
    "python-quickbooks"), so a stuck QBO would hang a worker forever. Mounting an adapter on the
    session is ordinary requests configuration. One adapter (one connection pool) can be shared by
    every client, so a rebuilt client (new token) keeps its warm connections.
    """

    def __init__(self, timeout: tuple[float, float], pool_size: int) -> None:
        # max_retries=0: never resend a POST on our own; the sync engine decides, with the same
        # requestid (docs/qbo.md, "requestid and duplicates").
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


@dataclass(frozen=True, slots=True)
class ResponseFacts:
    """What the SDK drops from an HTTP answer but error handling and logs need."""

    status: int | None = None
    intuit_tid: str | None = None
    retry_after: float | None = None


class LastResponse:
    """Remembers the last HTTP response seen on this thread, through a requests response hook.

    python-quickbooks drops the HTTP status and headers (docs/qbo.md, "python-quickbooks"); the
    hook keeps them for error classification, Retry-After and intuit_tid. Per thread, because
    one client serves every worker thread of a realm.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """A requests ``response`` hook: remember ``response`` for this thread."""
        self._local.response = response

    def forget(self) -> None:
        """Drop what this thread remembered (call before each request)."""
        self._local.response = None

    def facts(self) -> ResponseFacts:
        """Status, intuit_tid and Retry-After of this thread's last response, if there was one."""
        response: requests.Response | None = getattr(self._local, "response", None)
        if response is None:
            return ResponseFacts()
        headers = response.headers
        return ResponseFacts(
            status=response.status_code,
            intuit_tid=headers.get("intuit_tid"),
            retry_after=parse_retry_after(headers.get("Retry-After")),
        )


def quiet_token_loggers() -> None:
    """requests-oauthlib logs the token and the headers at DEBUG; keep those loggers above it."""
    for name in ("requests_oauthlib", "oauthlib"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)


__all__ = ["LastResponse", "ResponseFacts", "TimeoutAdapter", "quiet_token_loggers"]
