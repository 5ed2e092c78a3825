"""`classsync serve` start-up: wrong settings fail fast in one line; safe emulator and migration
defaults; connect --paste; send over TLS with a token; undecodable messages logged once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests

from classsync.store import migrate
from tests.e2e.processes import ServerProcess, free_port, run_cli, server_env
from tests.e2e.test_security_and_operations import _self_signed

pytestmark = pytest.mark.e2e

_SETTING_PREFIXES = (
    "QBO_",
    "SYNC_",
    "GRPC_",
    "DATABASE_URL",
    "SANDBOX_",
    "MIGRATE_",
    "LOG_",
    "METRICS_",
)


def _plain_env(database_url: str, **extra: str) -> dict[str, str]:
    """Only what the test sets, on top of the process environment minus classsync settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SETTING_PREFIXES)}
    env.update(
        {
            "DATABASE_URL": database_url,
            "GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
            "METRICS_ADDRESS": "127.0.0.1:0",  # servers of parallel tests must not share a port
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
        }
    )
    env.update(extra)
    return env


def _refused(env: dict[str, str], *args: str) -> str:
    """Run `serve`, expect it to exit non-zero with exactly one line and no traceback."""
    done = run_cli(env, "serve", *args, timeout=90)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "Traceback" not in output
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("classsync: configuration error:")
    return lines[0]


class TestConfigurationErrors:
    def test_production_without_client_id(self, database_url: str) -> None:
        line = _refused(_plain_env(database_url, QBO_ENVIRONMENT="production"))
        assert "QBO_CLIENT_ID" in line
        assert "QBO_CLIENT_SECRET" in line

    def test_sandbox_without_client_secret(self, database_url: str) -> None:
        env = _plain_env(
            database_url,
            QBO_ENVIRONMENT="sandbox",
            QBO_CLIENT_ID="ABcd1234",
            QBO_REALM_ID="4620816365000000000",
        )
        line = _refused(env)
        assert "QBO_CLIENT_SECRET" in line
        assert "QBO_CLIENT_ID" not in line

    def test_unreadable_tls_file(self, database_url: str, tmp_path: Path) -> None:
        cert, key = _self_signed(tmp_path)
        env = _plain_env(
            database_url,
            SANDBOX_AUTOSTART="false",
            GRPC_TLS_CERT_FILE=str(tmp_path / "missing.pem"),
            GRPC_TLS_KEY_FILE=str(key),
        )
        assert "GRPC_TLS_CERT_FILE" in _refused(env)
        key.chmod(0)
        env.update(GRPC_TLS_CERT_FILE=str(cert))
        if os.access(key, os.R_OK):  # root reads anything: show a non-PEM file instead
            key.write_text("not a key")
            key.chmod(0o600)
        assert "GRPC_TLS_KEY_FILE" in _refused(env)

    def test_tls_cert_without_key(self, database_url: str, tmp_path: Path) -> None:
        cert, _key = _self_signed(tmp_path)
        env = _plain_env(database_url, SANDBOX_AUTOSTART="false", GRPC_TLS_CERT_FILE=str(cert))
        assert "GRPC_TLS_KEY_FILE" in _refused(env)

    @pytest.mark.parametrize(
        "url", ["postgresql://app:s3cret@db-host:not-a-port/app", "nosuchdb://app:s3cret@db/app"]
    )
    def test_unparsable_database_url(self, url: str) -> None:
        line = _refused(_plain_env(url, SANDBOX_AUTOSTART="false"))
        assert "DATABASE_URL" in line
        assert "s3cret" not in line

    def test_unreachable_database_is_reported_before_the_emulator_starts(self) -> None:
        url = f"postgresql://postgres:s3cret@127.0.0.1:{free_port()}/postgres"
        # Emulator settings with SANDBOX_AUTOSTART=true: the emulator would start, were the
        # database not checked first.
        done = run_cli(_plain_env(url, SANDBOX_AUTOSTART="true"), "serve", timeout=90)
        assert done.returncode != 0
        assert "Traceback" not in done.stderr
        [line] = done.stderr.strip().splitlines()
        assert "unreachable" in line
        assert "DATABASE_URL" in line
        assert "s3cret" not in line
        assert "sandbox_started" not in done.stdout + done.stderr

    def test_invalid_value(self, database_url: str) -> None:
        line = _refused(_plain_env(database_url, SYNC_WORKERS="many"))
        assert "SYNC_WORKERS" in line

    def test_debug_log_level_shows_the_traceback(self, database_url: str) -> None:
        env = _plain_env(database_url, QBO_ENVIRONMENT="production", LOG_LEVEL="DEBUG")
        done = run_cli(env, "serve", timeout=90)
        assert done.returncode != 0
        assert "Traceback" in done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith("classsync: configuration error:")


class TestSafeDefaults:
    def test_emulator_settings_with_another_database_refuse_to_start(
        self, database_url: str
    ) -> None:
        line = _refused(_plain_env(database_url))  # QBO settings left at the emulator's
        assert "SANDBOX_AUTOSTART=true" in line
        assert "QBO_ENVIRONMENT" in line

    @pytest.mark.parametrize("how", ["flag", "setting"])
    def test_no_migrate_refuses_an_unmigrated_database(
        self, empty_database_url: str, sandbox: Any, how: str
    ) -> None:
        realm = sandbox.admin.create_realm()
        env = server_env(empty_database_url, sandbox, realm, LOG_LEVEL="INFO")
        if how == "flag":
            line = _refused(env, "--no-migrate")
        else:
            line = _refused({**env, "MIGRATE_ON_START": "false"})
        assert "not migrated" in line
        assert "classsync migrate" in line
        assert migrate.current(empty_database_url) is None  # nothing was created

    def test_no_migrate_serves_a_migrated_database(self, database_url: str, sandbox: Any) -> None:
        realm = sandbox.admin.create_realm()
        server = ServerProcess(server_env(database_url, sandbox, realm, MIGRATE_ON_START="false"))
        try:
            assert server.process.poll() is None
        finally:
            server.kill()


def test_connect_paste_exchanges_the_pasted_redirect(database_url: str, sandbox: Any) -> None:
    """No listener: the consent URL is printed, the redirected address is pasted on stdin."""
    realm = sandbox.admin.create_realm()
    other = sandbox.admin.create_realm()
    env = server_env(database_url, sandbox, realm, LOG_LEVEL="INFO")
    env.pop("QBO_REFRESH_TOKEN")
    # Nothing listens here: with --paste the browser's failed page load is fine.
    env["QBO_REDIRECT_URI"] = f"http://localhost:{free_port()}/callback"
    for chosen, warned in ((realm, False), (other, True)):
        process = subprocess.Popen(
            [sys.executable, "-m", "classsync", "connect", "--paste"],
            env=env,
            cwd=tempfile.mkdtemp(prefix="classsync-cli-"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            consent = _consent_url(process.stdout)
            # The person approves on the consent page (choosing a company); the emulator
            # redirects at once.
            answer = requests.get(
                consent, params={"realmId": chosen["realm_id"]}, allow_redirects=False, timeout=10
            )
            assert answer.status_code == 302
            out, err = process.communicate(answer.headers["Location"] + "\n", timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 0, err
        assert f"connected realm {chosen['realm_id']}" in out
        assert ("QBO_REALM_ID" in err) is warned
        assert "code=" not in out + err  # the authorization code is never echoed
    status = json.loads(run_cli(env, "status").stdout)
    assert status["realm"]["status"] == "CONNECTED"


def _consent_url(stdout: Any) -> str:
    for line in stdout:
        if line.strip().startswith("http"):
            return str(line.strip())
    msg = "connect --paste printed no URL"
    raise AssertionError(msg)


def test_send_reaches_a_server_with_tls_and_a_token(
    service_factory: Any, tmp_path: Path, database_url: str
) -> None:
    cert, key = _self_signed(tmp_path)
    svc = service_factory(
        grpc_tls_cert_file=str(cert), grpc_tls_key_file=str(key), grpc_auth_tokens="t-123"
    )
    payload = tmp_path / "classes.json"
    payload.write_text(json.dumps({"classes": [{"name": "OverTls", "full_name": "OverTls"}]}))
    env = _plain_env(database_url)
    address = f"127.0.0.1:{svc.app.port}"
    sent = run_cli(
        env, "send", str(payload), "--address", address, "--ca-file", str(cert), "--token", "t-123"
    )
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["results"][0]["status"] == "SYNCED"
    refused = run_cli(env, "send", str(payload), "--address", address, "--ca-file", str(cert))
    assert refused.returncode != 0
    assert "UNAUTHENTICATED" in refused.stderr
    assert "pass one of its GRPC_AUTH_TOKENS with --token" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_an_undecodable_message_is_answered_and_logged_once(
    database_url: str, sandbox: Any
) -> None:
    realm = sandbox.admin.create_realm()
    server = ServerProcess(server_env(database_url, sandbox, realm))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            raw = channel.stream_stream(
                "/ClassService/CreateClass",
                request_serializer=lambda body: body,
                response_deserializer=lambda body: body,
            )
            for _ in range(2):
                with pytest.raises(grpc.RpcError) as error:
                    list(raw(iter([b"\xff\xff\xff\xff"]), timeout=10))
                assert error.value.code() == grpc.StatusCode.INTERNAL
    finally:
        server.kill()
    lines = [json.loads(x) for x in server.output().splitlines() if x.startswith("{")]
    undecodable = [x for x in lines if "grpc_request_undecodable" in x["event"]]
    assert len(undecodable) == 2  # once per call
    assert all(x["level"] == "warning" for x in undecodable)
    assert "Traceback" not in server.output()
    assert not any("exception" in x for x in undecodable)
