"""The error tree: every error classsync raises on purpose, QBO faults by kind.

Each declares the gRPC status the transport should use when it ends a call; the domain itself
does not import grpc (api/interceptors.py maps the names).
"""

from __future__ import annotations

from classsync.domain.classes import ErrorCode


class ClasssyncError(Exception):
    """Base of every error classsync raises on purpose."""

    grpc_status = "INTERNAL"


class RequestTooLarge(ClasssyncError):
    """A ClassRequest carries more Classes than the configured limit."""

    grpc_status = "RESOURCE_EXHAUSTED"


class InvalidArgument(ClasssyncError):
    """A call's request is malformed as a whole (e.g. a read naming no Class)."""

    grpc_status = "INVALID_ARGUMENT"


class WatchExpired(ClasssyncError):
    """A watch ran for the longest time the server allows with Classes still unsettled."""

    grpc_status = "DEADLINE_EXCEEDED"


class Unauthenticated(ClasssyncError):
    """The caller presented no token or a wrong one."""

    grpc_status = "UNAUTHENTICATED"


class QboError(ClasssyncError):
    """A QBO call failed. ``code`` is QBO's fault code as text ('' when there was none)."""

    grpc_status = "UNAVAILABLE"

    def __init__(self, message: str, *, code: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail

    @property
    def error_code(self) -> str:
        """``QBO_<code>`` or a generic name, for results and logs."""
        return f"QBO_{self.code}" if self.code else ErrorCode.QBO_UNAVAILABLE.value


class QboRetryable(QboError):
    """Transient: timeouts, dropped connections, 5xx, unreadable bodies. Retry with backoff."""


class QboAdapterCrashed(QboRetryable):
    """An unexpected exception inside the QBO adapter or its SDKs: not an answer from QBO.

    Retried like a transient failure, but reported as ours (``INTERNAL_ERROR``), never as
    ``QBO_UNAVAILABLE``: the log line of the call says what happened.
    """

    @property
    def error_code(self) -> str:
        """Always ``INTERNAL_ERROR``."""
        return ErrorCode.INTERNAL_ERROR.value


class QboThrottled(QboRetryable):
    """HTTP 429 / fault 3001. ``retry_after`` in seconds when QBO said so."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, code: str = "3001"
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class QboServerError(QboRetryable):
    """QBO answered HTTP 5xx: its own trouble, not a verdict on the payload.

    A burst of these means QBO (or the realm's shard) is struggling, so the realm pauses as it
    does after a 429 instead of every worker hammering it.
    """

    def __init__(self, message: str, *, status: int, code: str = "", detail: str = "") -> None:
        super().__init__(message, code=code, detail=detail)
        self.status = status


class QboOutcomeUnknown(QboRetryable):
    """The request may have reached QBO (timeout or dropped connection after sending)."""


class QboAuthExpired(QboError):
    """HTTP 401: the access token is expired or invalid; refresh and retry once."""


class QboDisconnected(QboError):
    """The refresh token was refused (invalid_grant): a person must reconnect the realm."""


class QboRejected(QboError):
    """QBO refused the write for good (validation/business fault). Do not retry."""

    grpc_status = "FAILED_PRECONDITION"


class QboStaleSyncToken(QboRejected):
    """Fault 5010: the SyncToken sent is older than QBO's. Re-read and retry."""


class QboDuplicateName(QboRejected):
    """Fault 6240: a class with this name already exists under the same parent."""


class QboNotFound(QboRejected):
    """Fault 610: no class with that Id (or it is inactive)."""


class QboInvalidReference(QboRejected):
    """Fault 2500: ParentRef points at a missing or inactive class."""
