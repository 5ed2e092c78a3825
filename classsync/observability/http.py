"""The operations HTTP endpoint on METRICS_ADDRESS: /metrics, /healthz and /readyz.

prometheus_client's ``start_http_server`` serves its registry at every path and cannot be given
other routes, so this is a small ThreadingHTTPServer of our own that asks prometheus_client only
to encode the registry.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from classsync.observability.health import HealthReport

log = structlog.get_logger(__name__)


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9464`` for IPv6) → (host, port)."""
    host, separator, port = address.rpartition(":")
    if not separator or not port.isdigit():
        msg = f"METRICS_ADDRESS must be host:port, got {address!r}"
        raise ValueError(msg)
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - ":9464" means every address


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung scraper must not hold up shutdown

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, handler)


class OpsHttpServer:
    """Serves the registry and the health report; bound at construction (port 0 picks one)."""

    def __init__(
        self,
        address: str,
        registry: CollectorRegistry,
        health: Callable[[], HealthReport],
    ) -> None:
        self._httpd = _Server(split_address(address), _handler(registry, health))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound."""
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        """Serve on a daemon thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="ops-http", daemon=True
        )
        self._thread.start()
        log.info("ops_http_started", port=self.port)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5)
            self._thread = None
        self._httpd.server_close()


def _handler(
    registry: CollectorRegistry, health: Callable[[], HealthReport]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._send(200, content_type, encoder(registry))
            elif path == "/healthz":
                self._json(200, {"status": "alive"})
            elif path == "/readyz":
                report = health()
                self._json(200 if report.ready else 503, report.as_dict())
            else:
                self._json(
                    404, {"error": "not found", "paths": ["/metrics", "/healthz", "/readyz"]}
                )

        def _json(self, status: int, body: dict[str, Any]) -> None:
            self._send(status, "application/json", json.dumps(body).encode())

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
            """Scrapes every few seconds would flood the log: stay quiet."""

    return Handler
