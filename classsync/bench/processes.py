"""Child processes of a bench run: the QBO sandbox and `classsync serve`, with RSS sampling."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import psutil

from classsync.sandbox import SandboxAdmin

_SANDBOX_LINE = re.compile(r"listening on (http://\S+)")
_SERVER_LINE = re.compile(r"classsync listening on \S+ \(port (\d+)\)")
_START_TIMEOUT_S = 60.0


def _wait_for_line(
    process: subprocess.Popen[str], pattern: re.Pattern[str], what: str, log: Path
) -> re.Match[str]:
    """Read the child's stdout until ``pattern`` shows up (its "I am ready" line)."""
    assert process.stdout is not None
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        found = pattern.search(line)
        if found:
            # Keep draining stdout so the child never blocks on a full pipe.
            threading.Thread(target=_drain, args=(process.stdout,), daemon=True).start()
            return found
    process.kill()
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise RuntimeError(f"{what} did not start (see {log}):\n{tail}")


def _drain(stream: IO[str]) -> None:
    for _ in stream:
        pass


class _Child:
    """A child process whose stderr goes to a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path, cwd: Path) -> None:
        self.log = log
        self._log_file = log.open("w")
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            argv,
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            text=True,
        )

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time the child has used so far."""
        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)

    def stop(self, timeout: float = 15.0) -> None:
        """Ask the child to stop (SIGTERM), kill it if it will not."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log_file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _base_env() -> dict[str, str]:
    # Only what a child needs from us; a developer's QBO_*/DATABASE_URL must not leak in.
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class SandboxProcess(_Child):
    """`python -m classsync.sandbox` on a free port, with the given options (SANDBOX_* vars)."""

    def __init__(self, options: dict[str, Any], workdir: Path, name: str = "sandbox") -> None:
        env = _base_env()
        for key, value in {"host": "127.0.0.1", "port": 0, **options}.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            env[f"SANDBOX_{key.upper()}"] = str(value)
        log = workdir / f"{name}.log"
        super().__init__([sys.executable, "-m", "classsync.sandbox"], env, log, workdir)
        self.base_url = _wait_for_line(self.process, _SANDBOX_LINE, "the sandbox", log).group(1)
        self.admin = SandboxAdmin(self.base_url)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the sandbox and close the admin client."""
        self.admin.close()
        super().stop(timeout)


class ServerProcess(_Child):
    """`python -m classsync serve` against ``database_url`` and a sandbox realm."""

    def __init__(
        self,
        *,
        database_url: str,
        sandbox_url: str,
        realm: dict[str, Any],
        settings: dict[str, str],
        workdir: Path,
        name: str = "server",
    ) -> None:
        env = _base_env()
        env.update(
            {
                "DATABASE_URL": database_url,
                "GRPC_ADDRESS": "127.0.0.1:0",
                "QBO_ENVIRONMENT": f"{sandbox_url}/.well-known/openid_configuration",
                "QBO_API_BASE_URL": f"{sandbox_url}/v3",
                "QBO_REALM_ID": str(realm["realm_id"]),
                "QBO_REFRESH_TOKEN": str(realm["refresh_token"]),
                "SANDBOX_AUTOSTART": "false",
                "METRICS_ADDRESS": "127.0.0.1:0",  # several servers at once: each picks a port
                "LOG_FORMAT": "json",
                **settings,
            }
        )
        log = workdir / f"{name}.log"
        # cwd = the output directory, so a developer's ./.env is not read by the server.
        super().__init__([sys.executable, "-m", "classsync", "serve"], env, log, workdir)
        self.port = int(_wait_for_line(self.process, _SERVER_LINE, "the server", log).group(1))
        self.address = f"127.0.0.1:{self.port}"

    def peak_rss_bytes(self) -> int:
        """The kernel's high-water mark of the server's resident memory (VmHWM)."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        found = re.search(r"VmHWM:\s+(\d+) kB", status)
        return int(found.group(1)) * 1024 if found else 0

    def rss_bytes(self) -> int:
        """Resident memory now."""
        return int(psutil.Process(self.pid).memory_info().rss)


class Sampler:
    """Calls ``probe`` every ``interval`` s on a thread and keeps (elapsed, value) pairs."""

    def __init__(self, probe: Any, interval: float = 0.25) -> None:
        self._probe = probe
        self._interval = interval
        self._stop = threading.Event()
        self.samples: list[tuple[float, Any]] = []
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self.started = time.perf_counter()

    def _run(self) -> None:
        while True:
            try:
                value = self._probe()
            except Exception:  # a probe that fails once (process exiting) is just skipped
                value = None
            if value is not None:
                self.samples.append((time.perf_counter() - self.started, value))
            if self._stop.wait(self._interval):
                return

    def __enter__(self) -> Self:
        self.started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
