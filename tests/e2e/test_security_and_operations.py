"""Caller auth, TLS, tokens encrypted at rest, secrets kept out of logs, SIGTERM, status/retry."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import select

from classsync.api._generated import class_service_pb2 as pb
from classsync.api._generated import class_service_pb2_grpc as pb_grpc
from classsync.api.convert import SUCCESS_MESSAGE
from classsync.store.models import QboRealm
from classsync.store.token_store import SqlAlchemyTokenStore, TokenCipher
from tests.e2e.conftest import Service, klass
from tests.e2e.processes import ServerProcess, run_cli, server_env
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e


def _request(*names: str) -> pb.ClassRequest:
    return pb.ClassRequest(classes=[pb.Class(**klass(n)) for n in names])


class TestCallerAuthentication:
    def test_missing_or_wrong_token_is_unauthenticated_and_health_stays_open(
        self, service_factory: Any
    ) -> None:
        svc: Service = service_factory(grpc_auth_tokens="old-token,new-token")
        for metadata in ([], [("authorization", "Bearer nope")], [("authorization", "new-token")]):
            with pytest.raises(grpc.RpcError) as error:
                list(svc.stub.CreateClass(iter([_request("X")]), metadata=metadata, timeout=10))
            assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert svc.rows() == []  # nothing was stored for a refused caller
        health = health_pb2_grpc.HealthStub(svc.channel)
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == (
            health_pb2.HealthCheckResponse.SERVING
        )
        [reply] = svc.send([klass("Allowed")], metadata=[("authorization", "Bearer new-token")])
        assert reply.message == SUCCESS_MESSAGE


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_port_serves_tls_callers_only(service_factory: Any, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    svc: Service = service_factory(grpc_tls_cert_file=str(cert), grpc_tls_key_file=str(key))
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    with grpc.secure_channel(f"localhost:{svc.app.port}", credentials) as channel:
        stub = pb_grpc.ClassServiceStub(channel)
        [reply] = list(stub.CreateClass(iter([_request("Secure")]), timeout=20))
    assert reply.message == SUCCESS_MESSAGE
    with pytest.raises(grpc.RpcError) as error:
        svc.send([klass("Plain")], timeout=5)  # the harness's plaintext channel
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE


def test_tokens_are_encrypted_at_rest_and_survive_key_rotation(service_factory: Any) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    svc: Service = service_factory(token_encryption_key=old_key)
    [reply] = svc.send([klass("Encrypted")])
    assert reply.message == SUCCESS_MESSAGE
    with svc.app.storage.session_factory() as session:
        row = session.scalars(select(QboRealm)).one()
        assert row.refresh_token is not None
        assert row.refresh_token.startswith("fernet:")
        assert row.access_token is not None
        assert row.access_token.startswith("fernet:")
    old_store = SqlAlchemyTokenStore(svc.app.storage.session_factory, TokenCipher([old_key]))
    plain = old_store.load(svc.realm_id)
    assert plain is not None
    assert plain.refresh_token not in row.refresh_token
    rotated = SqlAlchemyTokenStore(svc.app.storage.session_factory, TokenCipher([new_key, old_key]))
    assert rotated.rotate_encryption() == 1
    only_new = SqlAlchemyTokenStore(svc.app.storage.session_factory, TokenCipher([new_key]))
    again = only_new.load(svc.realm_id)
    assert again is not None
    assert again.refresh_token == plain.refresh_token


@pytest.mark.slow
def test_secrets_never_reach_logs_errors_or_status(database_url: str, fresh_sandbox: Any) -> None:
    """Run a real server through refreshes, a 401 and a revoked realm; grep its output for secrets."""
    fresh_sandbox.admin.update_config(access_token_ttl=1)
    realm = fresh_sandbox.admin.create_realm()
    env = server_env(database_url, fresh_sandbox, realm, QBO_CLIENT_SECRET="sandbox-client-secret")
    server = ServerProcess(env)
    seen_tokens = {realm["refresh_token"], realm["access_token"]}
    store = None
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.ClassServiceStub(channel)
            for round_ in range(3):
                replies = list(stub.CreateClass(iter([_request(f"Secret{round_}")]), timeout=30))
                assert replies[0].message == SUCCESS_MESSAGE
                from classsync.store.database import make_engine, make_session_factory

                engine = make_engine(database_url)
                store = SqlAlchemyTokenStore(make_session_factory(engine), TokenCipher())
                current = store.load(realm["realm_id"])
                assert current is not None
                seen_tokens |= {current.refresh_token, current.access_token or ""}
                engine.dispose()
                time.sleep(1.2)  # let the access token expire: the next round refreshes
            fresh_sandbox.admin.revoke_tokens(realm["realm_id"])
            fresh_sandbox.admin.expire_access_tokens(realm["realm_id"])
            list(
                stub.CreateClass(
                    iter([_request("AfterRevoke")]),
                    timeout=6,
                    metadata=[("x-classsync-wait-seconds", "3")],
                )
            )
        status = run_cli(env, "status")
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert report["realm"]["status"] == "DISCONNECTED"
        assert "connect" in (report["realm"]["message"] or "")
    finally:
        server.kill()
    output = server.output() + status.stdout + status.stderr
    assert "qbo_call" in output  # the log really was captured
    seen_tokens.discard("")
    assert len(seen_tokens) >= 4  # tokens did rotate during the run
    for secret in [*seen_tokens, "sandbox-client-secret"]:
        assert secret not in output


def _in_flight(box: Any, realm_id: str) -> int:
    return int(box.admin.counters()["realms"].get(realm_id, {}).get("in_flight", 0))


@pytest.mark.slow
def test_sigterm_lets_the_call_in_flight_finish_then_exits_zero(
    database_url: str, fresh_sandbox: Any
) -> None:
    realm = fresh_sandbox.admin.create_realm()
    fresh_sandbox.admin.set_faults(latency_ms=800)
    server = ServerProcess(server_env(database_url, fresh_sandbox, realm))
    replies: list[pb.ClassResponse] = []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.ClassServiceStub(channel)
            caller = threading.Thread(
                target=lambda: replies.extend(
                    stub.CreateClass(iter([_request("Draining")]), timeout=30)
                )
            )
            caller.start()
            # SIGTERM once the call is stored and its QBO create is in flight.
            wait_for(
                lambda: _in_flight(fresh_sandbox, realm["realm_id"]) > 0,
                timeout=15,
                what="the QBO create to be in flight",
                interval=0.02,
            )
            server.process.send_signal(signal.SIGTERM)
            caller.join(30)
            assert server.process.wait(30) == 0
    finally:
        server.kill()
    assert [r.message for r in replies] == [SUCCESS_MESSAGE]
    assert [c["Name"] for c in fresh_sandbox.admin.classes(realm["realm_id"])] == ["Draining"]


def test_status_and_retry_commands(
    database_url: str, fresh_sandbox: Any, service_factory: Any
) -> None:
    realm = fresh_sandbox.admin.create_realm()
    svc: Service = service_factory(sandbox_=fresh_sandbox, realm_=realm, sync_max_attempts=1)
    fresh_sandbox.admin.set_faults(error_rate=1.0, error_body="html")
    [reply] = svc.send([klass("WillFail")])
    assert reply.results[0].status == "FAILED"
    assert reply.results[0].error_code == "ATTEMPTS_EXHAUSTED"
    env = server_env(database_url, fresh_sandbox, realm)
    report = json.loads(run_cli(env, "status").stdout)
    assert report["jobs"]["FAILED"] == 1
    assert report["changes_from_qbo"]["webhook_events_waiting"] == 0
    fresh_sandbox.admin.clear_faults()
    retried = run_cli(env, "retry", "--failed")
    assert "requeued 1 job" in retried.stdout
    svc.app.engine.wake()
    wait_for(
        lambda: bool(fresh_sandbox.admin.classes(realm["realm_id"])),
        timeout=15,
        what="the retried Class in QBO",
    )
    assert [c["Name"] for c in fresh_sandbox.admin.classes(realm["realm_id"])] == ["WillFail"]


def test_connect_runs_the_oauth_flow_and_stores_tokens(
    database_url: str, fresh_sandbox: Any
) -> None:
    """`classsync connect`: authorize → redirect with a code → tokens stored; then syncing works."""
    from tests.e2e.processes import free_port

    realm = fresh_sandbox.admin.create_realm()
    env = server_env(database_url, fresh_sandbox, realm)
    env.pop("QBO_REFRESH_TOKEN")
    env["QBO_REDIRECT_URI"] = f"http://127.0.0.1:{free_port()}/callback"
    before = json.loads(run_cli(env, "status").stdout)
    assert before["realm"]["status"] == "NOT_CONNECTED"
    done = run_cli(env, "connect", "--no-browser", "--timeout", "20")
    assert done.returncode == 0, done.stderr
    assert "connected realm" in done.stdout
    after = json.loads(run_cli(env, "status").stdout)
    assert after["realm"]["status"] == "CONNECTED"
    server = ServerProcess(env)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.ClassServiceStub(channel)
            [reply] = list(stub.CreateClass(iter([_request("ViaConnect")]), timeout=30))
    finally:
        server.kill()
    assert reply.message == SUCCESS_MESSAGE
    assert [c["Name"] for c in fresh_sandbox.admin.classes(realm["realm_id"])] == ["ViaConnect"]
