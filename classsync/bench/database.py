"""A throwaway PostgreSQL database for one bench run: given, local server, or started here."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from classsync.store.database import normalize_database_url

LOCAL_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _answers(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def admin_engine(url: str) -> Engine:
    """An engine on the server's admin database for CREATE/DROP DATABASE and CHECKPOINT."""
    # AUTOCOMMIT: CREATE/DROP DATABASE cannot run in a transaction; NullPool: nothing lingers.
    return create_engine(
        normalize_database_url(url), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bindir() -> Path | None:
    def version(path: str) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", path))

    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


@contextlib.contextmanager
def _throwaway_server() -> Iterator[str]:
    """initdb + pg_ctl from the local binaries (as user postgres: PostgreSQL refuses to run as root)."""
    bindir = _bindir()
    if bindir is None:
        raise RuntimeError("no PostgreSQL: set BENCH_DATABASE_URL or install postgresql")
    base = Path(tempfile.mkdtemp(prefix="classsync-bench-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        os.chown(base, account.pw_uid, account.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", _free_port()

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)  # noqa: S603

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust")
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c max_connections=200"
        run(
            str(bindir / "pg_ctl"),
            *("-D", str(data), "-l", str(base / "server.log"), "-o", options, "-w", "start"),
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop")
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def server_url(configured: str | None) -> Iterator[tuple[str, str]]:
    """(admin URL, where it came from): ``configured``, the local server, or a throwaway one."""
    if configured:
        yield configured, "BENCH_DATABASE_URL"
    elif _answers("127.0.0.1", 5432):
        yield LOCAL_SERVER_URL, "local server 127.0.0.1:5432"
    else:
        with _throwaway_server() as url:
            yield url, "throwaway server from local binaries"


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """Create ``classsync_bench_<random>`` on the server; yield its URL; drop it afterwards."""
    name = f"classsync_bench_{uuid.uuid4().hex[:10]}"
    engine = admin_engine(admin_url)
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(normalize_database_url(admin_url)).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
