"""Run `classsync` as a real process (for signals, stderr capture and CLI commands)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_env(
    database_url: str, sandbox: Any, realm: dict[str, Any], **extra: str
) -> dict[str, str]:
    """Environment for `classsync serve` against ``sandbox`` (no .env is read: cwd is a temp dir)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QBO_", "SYNC_", "GRPC_"))}
    env.update(
        {
            "DATABASE_URL": database_url,
            "QBO_ENVIRONMENT": sandbox.discovery_url,
            "QBO_API_BASE_URL": sandbox.api_base_url,
            "QBO_REALM_ID": realm["realm_id"],
            "QBO_REFRESH_TOKEN": realm["refresh_token"],
            "SANDBOX_AUTOSTART": "false",
            "METRICS_ADDRESS": "127.0.0.1:0",  # several servers at once: each picks a free port
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "DEBUG",
            "SYNC_WORKERS": "4",
            "SYNC_POLL_SECONDS": "0.2",
            "SYNC_BACKOFF_BASE_SECONDS": "0.1",
            "SYNC_BACKOFF_MAX_SECONDS": "1",
            "SYNC_THROTTLE_SECONDS": "1",
            "QBO_TIMEOUT_SECONDS": "5",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


class ServerProcess:
    """`python -m classsync serve` in a subprocess, stderr captured to a file."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = {**env, "GRPC_ADDRESS": f"127.0.0.1:{self.port}"}
        self.cwd = tempfile.mkdtemp(prefix="classsync-serve-")
        self.log_path = Path(self.cwd) / "stderr.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "classsync", "serve"],
            env=self.env,
            cwd=self.cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_for_port(30.0)

    def _wait_for_port(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                msg = f"server exited early ({self.process.returncode}):\n{self.output()}"
                raise RuntimeError(msg)
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        self.kill()
        msg = f"server did not listen within {timeout} s:\n{self.output()}"
        raise RuntimeError(msg)

    def output(self) -> str:
        """Everything the process wrote so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL (idempotent)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run one `classsync` command to completion."""
    return subprocess.run(
        [sys.executable, "-m", "classsync", *args],
        env=env,
        cwd=tempfile.mkdtemp(prefix="classsync-cli-"),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
