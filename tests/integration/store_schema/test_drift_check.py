"""check(): the migrated database matches the models; drift and stale databases are reported."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from classsync.store.migrate import SchemaDriftError, check, current, head, upgrade

pytestmark = pytest.mark.integration


def _execute(url: str, sql: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def test_no_drift_after_upgrade(database_url: str) -> None:
    """Models and migrations agree (alembic check finds nothing to generate)."""
    check(database_url)
    assert current(database_url) == head() == "0009_job_realm_claim_index"


def test_empty_database_has_no_revision(empty_database_url: str) -> None:
    """current() tells a database classsync never touched from a migrated one."""
    assert current(empty_database_url) is None


def test_database_behind_head_is_reported(empty_database_url: str) -> None:
    """A database at an older revision is not "in step"."""
    upgrade(empty_database_url, "0001_node_qbclass")
    assert current(empty_database_url) == "0001_node_qbclass"
    with pytest.raises(SchemaDriftError, match="not up to date"):
        check(empty_database_url)


@pytest.mark.parametrize(
    "change",
    [
        'DROP INDEX "QBClass_realmId_fullNameKey_key"',
        'ALTER TABLE "ClasssyncJob" ADD COLUMN "extra" TEXT',
        'ALTER TABLE "ClasssyncRealm" ALTER COLUMN "statusMessage" TYPE VARCHAR(10)',
    ],
)
def test_hand_made_change_is_drift(database_url: str, change: str) -> None:
    """A schema change made outside the migrations fails the check."""
    _execute(database_url, change)
    with pytest.raises(SchemaDriftError):
        check(database_url)
