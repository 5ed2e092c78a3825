"""The monitoring parts `classsync serve` runs beside the server: health checker, HTTP endpoint."""

from __future__ import annotations

from classsync.observability.health import HealthMonitor, HealthReport
from classsync.observability.http import OpsHttpServer


class Observability:
    """Starts and stops the health checker and (when METRICS_ADDRESS is set) the HTTP endpoint."""

    def __init__(self, monitor: HealthMonitor, http: OpsHttpServer | None) -> None:
        self.monitor = monitor
        self.http = http

    @property
    def http_port(self) -> int | None:
        """Port of /metrics, /healthz and /readyz; None when they are off."""
        return None if self.http is None else self.http.port

    @property
    def report(self) -> HealthReport:
        """The latest health report."""
        return self.monitor.report

    def start(self) -> None:
        """First check now (so health is true from the first call), then serve."""
        self.monitor.start()
        if self.http is not None:
            self.http.start()

    def stop(self) -> None:
        """Stop checking and serving."""
        self.monitor.stop()
        if self.http is not None:
            self.http.stop()
