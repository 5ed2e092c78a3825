"""structlog set-up: JSON when stderr is not a terminal, console otherwise; secrets redacted."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from structlog.tracebacks import ExceptionDictTransformer

# Keys whose values are never written, whatever logs them (our code, a library, a bound context).
_SECRET_KEYS = frozenset(
    {
        "access_token",
        "refresh_token",
        "client_secret",
        "authorization",
        "token",
        "password",
        "code",
        "secret",
    }
)
_REDACTED = "[redacted]"


def redact_secrets(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace the values of secret-looking keys. `code` is kept when it is a QBO fault code."""
    for key in list(event_dict):
        lowered = key.lower()
        if lowered in _SECRET_KEYS and not (lowered == "code" and _is_fault_code(event_dict[key])):
            event_dict[key] = _REDACTED
    return event_dict


def _is_fault_code(value: object) -> bool:
    return isinstance(value, int) or (
        isinstance(value, str) and value.isdigit() and len(value) <= 6
    )


class OneLineDecodeErrors(logging.Filter):
    """grpc logs a full traceback for every request message it cannot decode (and answers the
    call with INTERNAL); one warning line per call says as much without flooding the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Exception deserializing message!" and record.exc_info:
            error = record.exc_info[1]
            record.msg = "grpc_request_undecodable: %s: %s (the call was answered INTERNAL)"
            record.args = (type(error).__name__, error)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    """Configure structlog and route stdlib logs (grpc, sqlalchemy, alembic) through the same chain.

    Tracebacks are rendered without frame locals: structlog's default `show_locals=True` would put
    OAuth tokens held in local variables into the log (secrets never reach a log).
    """
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    renderer: Any
    if use_console:
        renderer = structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
        exception_step: list[Any] = []
    else:
        renderer = structlog.processors.JSONRenderer()
        exception_step = [
            structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
        ]
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *exception_step,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    grpc_common = logging.getLogger("grpc._common")
    if not any(isinstance(f, OneLineDecodeErrors) for f in grpc_common.filters):
        grpc_common.addFilter(OneLineDecodeErrors())
    # Libraries that are chatty at INFO: keep their warnings only.
    for noisy in (
        "sqlalchemy",
        "alembic",
        "urllib3",
        "aiohttp.access",
        "requests_oauthlib",
        "oauthlib",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
