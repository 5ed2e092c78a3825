"""The classsync image end to end: PostgreSQL, the sandbox, the Node caller, health, docker stop."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from classsync.api.convert import SUCCESS_MESSAGE
from tests.container.conftest import ROOT, docker
from tests.e2e.processes import free_port

pytestmark = pytest.mark.container

# The image's stop budget: Docker's default `docker stop` timeout, which the image's
# SHUTDOWN_GRACE_SECONDS (7) fits inside.
STOP_TIMEOUT_SECONDS = 10


def _state(name: str, field: str) -> str:
    return docker("inspect", "--format", "{{json " + field + "}}", name)


def _wait_healthy(name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = json.loads(_state(name, ".State.Health.Status"))
        if status == "healthy":
            return
        assert json.loads(_state(name, ".State.Running")), f"container {name} exited"
        time.sleep(0.5)
    log = json.loads(_state(name, ".State.Health.Log"))
    pytest.fail(f"container not healthy within {timeout} s (last: {status}): {log[-2:]}")


class RunningContainer:
    """A `docker run -d` of the image with host networking; the env file keeps secrets off argv."""

    def __init__(self, image: str, env: dict[str, str], env_file: Path) -> None:
        self.name = f"classsync-test-{uuid.uuid4().hex[:10]}"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        # A short health interval so the test waits seconds, not the image's 10 s; the probe
        # command itself is the image's HEALTHCHECK.
        docker(
            "run", "-d", "--name", self.name, "--network", "host", "--env-file", str(env_file),
            "--health-interval", "1s", "--health-start-period", "30s", image,
        )  # fmt: skip

    def logs(self) -> str:
        """stdout and stderr (where the JSON log lines go) together."""
        done = subprocess.run(
            ["docker", "logs", self.name],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=30,
            check=False,
        )
        return done.stdout

    def remove(self) -> None:
        docker("rm", "-f", self.name, check=False)


@pytest.fixture
def container(
    classsync_image: str, empty_database_url: str, sandbox: Any, tmp_path: Path
) -> Iterator[tuple[RunningContainer, dict[str, Any], int]]:
    """The image serving on a free port, migrating an empty database, talking to the sandbox."""
    realm = sandbox.admin.create_realm()
    port = free_port()
    env = {
        "DATABASE_URL": empty_database_url,
        "GRPC_ADDRESS": f"0.0.0.0:{port}",
        "METRICS_ADDRESS": "127.0.0.1:0",  # host networking: never the image's fixed 9464
        "QBO_ENVIRONMENT": sandbox.discovery_url,
        "QBO_API_BASE_URL": sandbox.api_base_url,
        "QBO_REALM_ID": realm["realm_id"],
        "QBO_REFRESH_TOKEN": realm["refresh_token"],
        "OAUTHLIB_INSECURE_TRANSPORT": "1",  # the sandbox speaks plain HTTP on loopback
        "SANDBOX_AUTOSTART": "false",
        "SYNC_POLL_SECONDS": "0.2",
    }
    running = RunningContainer(classsync_image, env, tmp_path / "env")
    try:
        yield running, realm, port
    finally:
        running.remove()


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_image_serves_the_seed_example_reports_healthy_and_stops_cleanly(
    container: tuple[RunningContainer, dict[str, Any], int], sandbox: Any, tmp_path: Path
) -> None:
    running, realm, port = container
    _wait_healthy(running.name, timeout=60)

    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps([json.loads((ROOT / "examples" / "classes.json").read_text())]))
    done = subprocess.run(
        [
            "node",
            str(ROOT / "tests" / "node" / "seed_client.js"),
            f"127.0.0.1:{port}",
            str(payload),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{done.stderr}\n{running.logs()}"
    [line] = done.stdout.strip().splitlines()
    reply = json.loads(line)
    assert reply["message"] == SUCCESS_MESSAGE
    assert len(reply["ids"]) == 2

    qbo = {c["FullyQualifiedName"]: c for c in sandbox.admin.classes(realm["realm_id"])}
    assert set(qbo) == {"Company", "Company:Software Dept"}
    assert qbo["Company:Software Dept"]["ParentRef"]["value"] == qbo["Company"]["Id"]

    started = time.monotonic()
    docker("stop", "--time", str(STOP_TIMEOUT_SECONDS), running.name, timeout=60)
    elapsed = time.monotonic() - started
    # `classsync serve` drains on SIGTERM and returns 0; 143 would mean the signal killed it,
    # 137 that Docker had to SIGKILL it after the timeout.
    assert json.loads(_state(running.name, ".State.ExitCode")) == 0, running.logs()
    assert elapsed < STOP_TIMEOUT_SECONDS, f"docker stop took {elapsed:.1f} s"
    assert "server_stopped" in running.logs()
