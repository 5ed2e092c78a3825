"""What an operator sees when something is wrong: one line that says what to do, no traceback."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import grpc
import pytest

from classsync.api._generated import class_service_pb2 as pb
from classsync.api._generated import class_service_pb2_grpc as pb_grpc
from classsync.api.server import build_server
from classsync.store import migrate
from tests.e2e.conftest import klass
from tests.e2e.processes import free_port, run_cli
from tests.e2e.test_metrics_and_health import CREATE_CLASS, sample
from tests.e2e.test_startup import _plain_env, _refused
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e


def test_a_grpc_address_in_use_is_refused_in_one_line(database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        env = _plain_env(database_url, SANDBOX_AUTOSTART="false", GRPC_ADDRESS=address)
        line = _refused(env)
    assert f"GRPC_ADDRESS {address} cannot be listened on" in line
    assert "free host:port" in line


def test_a_second_server_cannot_share_the_grpc_port(service_factory: Any) -> None:
    """gRPC's default SO_REUSEPORT would let it bind and take half of the calls."""
    first = service_factory()
    with pytest.raises(RuntimeError):
        build_server(
            cast(Any, pb_grpc.ClassServiceServicer()),
            address=f"127.0.0.1:{first.app.port}",
            max_workers=2,
            max_message_bytes=4096,
            auth_tokens=[],
        )


def test_send_to_a_server_that_is_down_says_what_to_do(tmp_path: Path) -> None:
    payload = tmp_path / "classes.json"
    payload.write_text(json.dumps({"classes": [{"name": "A", "full_name": "A"}]}))
    address = f"127.0.0.1:{free_port()}"
    done = run_cli(_plain_env("sqlite:///unused.db"), "send", str(payload), "--address", address)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "UNAVAILABLE" in done.stderr
    assert f"is `classsync serve` running on {address}?" in done.stderr


@pytest.mark.parametrize("content", [None, '{"classes": [', '{"classes": [{"nme": "A"}]}'])
def test_send_with_an_unusable_file_says_which_and_why(tmp_path: Path, content: str | None) -> None:
    payload = tmp_path / "classes.json"
    if content is not None:
        payload.write_text(content)
    done = run_cli(_plain_env("sqlite:///unused.db"), "send", str(payload), "--timeout", "1")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"classsync send: cannot use {payload}: ")


def test_retry_on_a_database_never_migrated_says_to_migrate(empty_database_url: str) -> None:
    done = run_cli(_plain_env(empty_database_url), "retry")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "not migrated" in line
    assert "run `classsync migrate` first" in line
    assert migrate.current(empty_database_url) is None


def test_status_on_a_database_never_migrated_is_reachable_not_ready(
    empty_database_url: str,
) -> None:
    done = run_cli(_plain_env(empty_database_url), "status")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["database"]["reachable"] is True
    assert report["reasons"] == [
        f"database schema at nothing, expected {migrate.head()}: run `classsync migrate`"
    ]


def test_a_token_encryption_key_that_is_not_fernet_is_refused_without_echoing_it(
    database_url: str,
) -> None:
    env = _plain_env(
        database_url, SANDBOX_AUTOSTART="false", TOKEN_ENCRYPTION_KEY="not-a-fernet-key"
    )
    line = _refused(env)
    assert "TOKEN_ENCRYPTION_KEY" in line
    assert "not-a-fernet-key" not in line


def test_a_call_whose_deadline_passes_mid_stream_is_counted_as_such(service_factory: Any) -> None:
    """Not as UNKNOWN, which would read as a server fault on a dashboard."""
    svc = service_factory()
    released = threading.Event()

    def requests() -> Iterator[pb.ClassRequest]:
        yield pb.ClassRequest(classes=[pb.Class(**klass("Late"))])
        released.wait(10)  # the caller keeps its stream open past its deadline

    with pytest.raises(grpc.RpcError) as ended:
        list(svc.stub.CreateClass(requests(), timeout=0.5))
    released.set()
    assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_for(
        lambda: (
            sample(svc, "classsync_grpc_calls_total", method=CREATE_CLASS, code="DEADLINE_EXCEEDED")
            == 1
        ),
        timeout=10,
        what="the call counted as DEADLINE_EXCEEDED",
    )
    assert sample(svc, "classsync_grpc_calls_total", method=CREATE_CLASS, code="UNKNOWN") == 0


def test_a_call_its_caller_cancels_is_counted_as_cancelled(service_factory: Any) -> None:
    """A caller that leaves by choice, far from its deadline, is CANCELLED, not a deadline."""
    svc = service_factory()
    released = threading.Event()

    def requests() -> Iterator[pb.ClassRequest]:
        yield pb.ClassRequest(classes=[pb.Class(**klass("Left"))])
        released.wait(10)  # the stream stays open until the caller cancels

    call = svc.stub.CreateClass(requests(), timeout=30)
    wait_for(
        lambda: sample(svc, "classsync_classes_received_total") == 1,
        timeout=10,
        what="the first request stored",
    )
    call.cancel()
    released.set()
    wait_for(
        lambda: (
            sample(svc, "classsync_grpc_calls_total", method=CREATE_CLASS, code="CANCELLED") == 1
        ),
        timeout=10,
        what="the call counted as CANCELLED",
    )
    assert (
        sample(svc, "classsync_grpc_calls_total", method=CREATE_CLASS, code="DEADLINE_EXCEEDED")
        == 0
    )
