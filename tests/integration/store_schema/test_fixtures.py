"""The database fixtures other tests rely on: fresh, migrated, isolated databases."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from classsync.store.database import make_engine
from classsync.store.migrate import current, head
from classsync.store.models import QBClass, new_id, utcnow
from tests.fixtures.database import _LocalPostgres, _postgres_bindir, fresh_postgres_database
from tests.fixtures.requirements import require_or_skip

pytestmark = pytest.mark.integration


def _count_classes(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(QBClass)).scalar_one())
    finally:
        engine.dispose()


def test_database_url_is_a_migrated_private_copy(
    database_url: str, migrated_template: str, postgres_server_url: str
) -> None:
    """Each test's database is at head, and what one test writes no other database sees."""
    assert database_url.startswith("postgresql+psycopg://")
    assert make_url(database_url).database != make_url(migrated_template).database
    assert current(database_url) == head()
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.insert(QBClass).values(id=new_id(), name="Mine", updatedAt=utcnow()))
    engine.dispose()
    assert _count_classes(database_url) == 1
    template = make_url(migrated_template).database
    with fresh_postgres_database(postgres_server_url, template) as other:
        assert _count_classes(other) == 0


def test_sqlite_database_url_is_migrated(sqlite_database_url: str) -> None:
    """The SQLite fixture is a migrated file of its own."""
    assert sqlite_database_url.startswith("sqlite:///")
    assert current(sqlite_database_url) == head()


@pytest.mark.slow
def test_local_postgres_server_starts_and_cleans_up() -> None:
    """The no-Docker, no-TEST_DATABASE_URL branch: a server from local binaries, as postgres."""
    bindir = _postgres_bindir()
    if bindir is None:
        require_or_skip("the PostgreSQL server binaries", "install the postgresql package")
    server = _LocalPostgres(bindir)
    try:
        url = server.start()
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT current_user")).scalar_one() == "postgres"
        engine.dispose()
    finally:
        server.stop()
    assert not server.base.exists()
