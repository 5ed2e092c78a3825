"""The root alembic.ini drives the same migrations from the Alembic CLI, online and as SQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from classsync.store.migrate import check, current, head
from tests.integration.store_schema._pg_schema import execute_script

pytestmark = pytest.mark.integration

_ROOT = Path(__file__).resolve().parents[3]


def _alembic(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(_ROOT / "alembic.ini"), *args],
        cwd=_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_cli_upgrade_with_url_argument(tmp_path: Path) -> None:
    """`alembic -x url=... upgrade head` migrates; the URL comes only from the command line."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    _alembic("-x", f"url={url}", "upgrade", "head")
    assert current(url) == head()
    check(url)


def test_offline_sql_builds_the_schema(empty_database_url: str) -> None:
    """`upgrade head --sql` prints a script that, run on an empty database, yields head."""
    script = _alembic("-x", f"url={empty_database_url}", "upgrade", "head", "--sql")
    assert 'CREATE TABLE "QBClass"' in script
    execute_script(empty_database_url, script)
    assert current(empty_database_url) == head()
    check(empty_database_url)
