"""Fixtures of the schema tests: one empty or migrated database of each supported kind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.database import fresh_mysql_database

_DIALECTS = ["postgresql", pytest.param("mysql", marks=pytest.mark.mysql), "sqlite"]


@pytest.fixture(params=_DIALECTS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh empty database of each kind."""
    if request.param == "postgresql":
        yield request.getfixturevalue("empty_database_url")
    elif request.param == "mysql":
        with fresh_mysql_database(request.getfixturevalue("mysql_server_url")) as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'empty.db'}"


@pytest.fixture(params=_DIALECTS)
def migrated_url(request: pytest.FixtureRequest) -> str:
    """A fresh migrated database of each kind, from the shared fixtures."""
    name = {"postgresql": "database_url", "mysql": "mysql_database_url"}.get(
        request.param, "sqlite_database_url"
    )
    return str(request.getfixturevalue(name))
