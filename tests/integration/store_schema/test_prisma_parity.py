"""schema.prisma and the Alembic migrations build the same PostgreSQL schema (Prisma as oracle)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from classsync.store.migrate import upgrade
from tests.fixtures.database import fresh_postgres_database
from tests.fixtures.requirements import require_or_skip
from tests.integration.store_schema._pg_schema import execute_script, snapshot

pytestmark = pytest.mark.integration

_ROOT = Path(__file__).resolve().parents[3]
_PRISMA_PROJECT = _ROOT / "tools" / "prisma"
_PRISMA = _PRISMA_PROJECT / "node_modules" / ".bin" / "prisma"


def _prisma_env(adapter_url: str) -> dict[str, str]:
    # Point the CLI at files that exist so it never tries to download native engines
    # (unreachable here); the WASM schema engine does the work. See tools/prisma/README.md.
    return {
        **os.environ,
        "PRISMA_SCHEMA_ENGINE_BINARY": "/bin/false",
        "PRISMA_QUERY_ENGINE_LIBRARY": "/bin/false",
        "PRISMA_HIDE_UPDATE_MESSAGE": "1",
        "CHECKPOINT_DISABLE": "1",
        "DATABASE_URL": "postgresql://unused@127.0.0.1/unused",
        "PRISMA_ADAPTER_URL": adapter_url,
    }


def _prisma(*args: str, adapter_url: str) -> str:
    result = subprocess.run(  # pinned local CLI, fixed arguments
        [str(_PRISMA), *args],
        cwd=_PRISMA_PROJECT,
        env=_prisma_env(adapter_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"prisma {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


@pytest.fixture(scope="module")
def adapter_url(postgres_server_url: str) -> str:
    """The server in the plain libpq form node-postgres understands (no driver, no options)."""
    url = make_url(postgres_server_url).set(drivername="postgresql", query={})
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def prisma_cli() -> Path:
    """The pinned Prisma CLI from tools/prisma, installed with `npm ci` when missing."""
    if not _PRISMA.exists():
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            require_or_skip("node/npm (for the Prisma CLI oracle)", "install Node.js and npm")
        installed = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=_PRISMA_PROJECT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if installed.returncode != 0:
            require_or_skip(
                "the Prisma CLI",
                "run `make node-deps` (npm ci in tools/prisma) with a reachable npm registry; "
                f"npm said: {installed.stderr[-500:]}",
            )
    return _PRISMA


@pytest.fixture(scope="module")
def prisma_ddl(prisma_cli: Path, adapter_url: str) -> str:
    """The DDL Prisma would run to create schema.prisma on an empty PostgreSQL database."""
    return _prisma(
        "migrate",
        "diff",
        "--from-empty",
        "--to-schema-datamodel",
        str(_ROOT / "schema.prisma"),
        "--script",
        adapter_url=adapter_url,
    )


def test_schema_prisma_is_valid(prisma_cli: Path, adapter_url: str) -> None:
    """Prisma's own validator accepts schema.prisma."""
    out = _prisma("validate", "--schema", str(_ROOT / "schema.prisma"), adapter_url=adapter_url)
    assert "is valid" in out


def test_prisma_ddl_names_every_table(prisma_ddl: str) -> None:
    """The oracle really describes our three tables (guards against an empty diff)."""
    for table in ("QBClass", "ClasssyncJob", "ClasssyncRealm"):
        assert f'CREATE TABLE "{table}"' in prisma_ddl


def test_migrated_database_equals_prisma_schema(
    prisma_ddl: str, empty_database_url: str, postgres_server_url: str
) -> None:
    """Columns (type, nullability, default), constraints and indexes are identical by name."""
    upgrade(empty_database_url)
    migrated = snapshot(empty_database_url)
    with fresh_postgres_database(postgres_server_url) as prisma_url:
        execute_script(prisma_url, prisma_ddl)
        expected = snapshot(prisma_url)
    assert migrated["columns"], "the migrated database has no tables"
    for part in ("columns", "constraints", "indexes", "enums"):
        assert migrated[part] == expected[part], part
