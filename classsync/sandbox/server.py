"""Run the sandbox: in a background thread (tests, tools) or in the foreground (the CLI)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from types import TracebackType
from typing import cast

from aiohttp import web

from classsync.sandbox.app import build_app
from classsync.sandbox.client import SandboxAdmin
from classsync.sandbox.config import SandboxConfig

log = logging.getLogger(__name__)
_START_TIMEOUT = 15.0


async def _start(config: SandboxConfig) -> tuple[web.AppRunner, int]:
    app = build_app(config)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=logging.getLogger("aiohttp.access") if config.access_log else None,
    )
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, backlog=1024, reuse_address=True)
    await site.start()
    port = int(runner.addresses[0][1])
    return runner, port


def _url_host(host: str) -> str:
    # A wildcard bind is reached through loopback; IPv6 literals need brackets in URLs.
    if host in {"", "0.0.0.0"}:  # noqa: S104 (we compare, we do not bind)
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class RunningSandbox:
    """A sandbox server running on its own thread and event loop."""

    def __init__(
        self,
        config: SandboxConfig,
        port: int,
        loop: asyncio.AbstractEventLoop,
        thread: threading.Thread,
    ) -> None:
        self.config = config
        self.port = port
        self.base_url = f"http://{_url_host(config.host)}:{port}"
        self._loop = loop
        self._thread = thread
        self.admin = SandboxAdmin(self.base_url)

    @property
    def discovery_url(self) -> str:
        """Pass as intuitlib ``AuthClient(environment=...)``."""
        return self.base_url + "/.well-known/openid_configuration"

    @property
    def api_base_url(self) -> str:
        """Set as python-quickbooks' ``api_url_v3`` (docs/qbo.md, "python-quickbooks")."""
        return self.base_url + "/v3"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving (state file saved), then join the thread. Safe to call twice."""
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        self.admin.close()

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RunningSandbox(base_url={self.base_url!r})"


def start_in_thread(config: SandboxConfig | None = None) -> RunningSandbox:
    """Start a sandbox on a daemon thread; returns once it accepts connections."""
    config = config or SandboxConfig()
    ready = threading.Event()
    outcome: dict[str, object] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            runner, port = loop.run_until_complete(_start(config))
        except BaseException as error:  # handed to the caller below
            outcome["error"] = error
            ready.set()
            loop.close()
            return
        outcome.update(port=port, loop=loop)
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    thread = threading.Thread(target=run, name="classsync-sandbox", daemon=True)
    thread.start()
    if not ready.wait(_START_TIMEOUT):
        raise RuntimeError("the sandbox did not start in time")
    error = outcome.get("error")
    if isinstance(error, BaseException):
        raise RuntimeError(f"the sandbox could not start: {error}") from error
    loop = cast(asyncio.AbstractEventLoop, outcome["loop"])
    return RunningSandbox(config, cast(int, outcome["port"]), loop, thread)


async def serve(config: SandboxConfig, *, announce: bool = True) -> None:
    """Serve in the foreground until SIGINT/SIGTERM; the state file is saved on the way out."""
    runner, port = await _start(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    base = f"http://{_url_host(config.host)}:{port}"
    if announce:
        print(f"classsync sandbox listening on {base}", flush=True)
        print(f"  discovery (QBO_ENVIRONMENT): {base}/.well-known/openid_configuration", flush=True)
        print(f"  API base (QBO_API_BASE_URL): {base}/v3", flush=True)
        print(f"  admin: {base}/_sandbox/  dev realm: {config.dev_realm_id}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
