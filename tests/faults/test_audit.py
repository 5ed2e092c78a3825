"""The fault audit can fail: it sees a half-released job and a row that disagrees with QBO."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from quickbooks.objects.trackingclass import Class
from sqlalchemy import insert

from classsync.store.models import QBClass, SyncJob, new_id, utcnow
from tests.faults.harness import audit, db_engine
from tests.fixtures.sandbox import make_qbo_client

pytestmark = pytest.mark.integration


def _store(engine: Any, realm_id: str, key: str, qb_id: str, **job: Any) -> None:
    class_id = new_id()
    now = utcnow()
    row = {"version_token": 0, "is_active": True, **job.pop("row", {})}
    with engine.begin() as conn:
        conn.execute(
            insert(QBClass).values(
                id=class_id, name=key, full_name=key, full_name_key=key, qb_id=qb_id, **row
            )
        )
        values = {"status": "SYNCED", "synced_at": now, "attempts": 0, "generation": 1, **job}
        conn.execute(insert(SyncJob).values(class_id=class_id, realm_id=realm_id, **values))


def _qbo_class(sandbox: Any, realm: dict[str, Any], name: str) -> str:
    item = Class()
    item.Name = name
    return str(item.save(qb=make_qbo_client(sandbox, realm)).Id)


def test_a_clean_table_passes(database_url: str, fresh_sandbox: Any) -> None:
    realm = fresh_sandbox.admin.create_realm()
    engine = db_engine(database_url)
    try:
        _store(engine, realm["realm_id"], "Clean", _qbo_class(fresh_sandbox, realm, "Clean"))
        result = audit(engine, fresh_sandbox.admin, realm["realm_id"])
    finally:
        engine.dispose()
    assert result.problems == []
    assert (result.rows, result.synced, result.sandbox_classes) == (1, 1, 1)


def test_every_broken_job_column_and_qbo_disagreement_is_reported(
    database_url: str, fresh_sandbox: Any
) -> None:
    realm = fresh_sandbox.admin.create_realm()
    realm_id = realm["realm_id"]
    later = datetime(2030, 1, 1)
    broken: dict[str, dict[str, Any]] = {
        "Leased": {"lease_owner": "dead-worker-0", "lease_expires_at": later},
        "Unknown": {"outcome_unknown": True},
        "Errored": {"last_error_code": "QBO_UNAVAILABLE"},
        "NoTime": {"synced_at": None},
        "Retried": {"attempts": 41},
        "Requeued": {"generation": 2},
        "OldToken": {"row": {"version_token": 7}},
        "Inactive": {"row": {"is_active": False}},
    }
    engine = db_engine(database_url)
    try:
        for key, job in broken.items():
            _store(engine, realm_id, key, _qbo_class(fresh_sandbox, realm, key), **job)
        result = audit(engine, fresh_sandbox.admin, realm_id, max_attempts=40)
    finally:
        engine.dispose()
    text = "\n".join(result.problems)
    for expected in (
        "keeps a lease owner, e.g. ['Leased']",
        "keeps a lease expiry, e.g. ['Leased']",
        "still flagged outcome-unknown, e.g. ['Unknown']",
        "keeps a last error, e.g. ['Errored']",
        "has no syncedAt, e.g. ['NoTime']",
        "attempts outside 0..40, e.g. ['Retried']",
        "generation outside 1..1, e.g. ['Requeued']",
        "row 'OldToken' has versionToken=7",
        "row 'Inactive' has versionToken=0 isActive=False",
    ):
        assert expected in text, text
    assert len(result.problems) == 9
