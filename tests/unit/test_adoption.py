"""adopt_unsynced: rows stored but never synced get a job, once; the others are reported."""

from __future__ import annotations

import pytest

from classsync.sync.adoption import adopt_unsynced
from tests.fakes import FakeClock, FakeDatabase
from tests.fakes.store import FakeClassRow

pytestmark = pytest.mark.unit


def _row(db: FakeDatabase, row_id: str, name: str, key: str, full_name: str | None = None) -> None:
    db.tables.classes[row_id] = FakeClassRow(row_id, name, key, full_name, True, False, "QBO")


def _node_rows() -> FakeDatabase:
    db = FakeDatabase()
    _row(db, "a", "Company", "company", "Company")
    _row(db, "b", "Backend", "company:software dept:backend", "Company / Software Dept / Backend")
    _row(db, "c", "sales", "", "sales")  # no key of its own: row "d" holds "sales"
    _row(db, "d", "Sales", "sales", "Sales")
    db.tables.classes["d"].qb_id = "100"  # synced by Node: left alone
    _row(db, "e", "Bad:Name", "bad:name", "Bad:Name")  # QBO would refuse it
    _row(db, "f", "Later", "", "Later")  # written by Node after the migration: no key, no Id
    _row(db, "g", "Synced Later", "", "Synced Later")  # the same, synced by Node
    db.tables.classes["g"].qb_id = "101"
    return db


def test_unsynced_rows_get_one_job_each_and_missing_ancestors_a_placeholder() -> None:
    db = _node_rows()
    report = adopt_unsynced(db.uow, realm_id="9130", clock=FakeClock())
    assert (report.queued, report.keyed) == (3, 2)
    assert sorted(c for c, _ in report.skipped) == ["c", "e"]
    assert "'sales'" in dict(report.skipped)["c"]
    assert dict(report.skipped)["e"].startswith("NAME_HAS_COLON")
    jobs = db.tables.jobs
    assert {"a", "b", "f"} <= set(jobs)
    assert {jobs["a"].realm_id, jobs["b"].realm_id} == {"9130"}
    assert (db.row("f").key, db.row("g").key) == ("later", "synced later")
    assert "g" not in jobs  # keyed, so a resend by name finds it; it has a QBO Id already
    assert (jobs["a"].depth, jobs["b"].depth) == (1, 3)
    placeholders = [r for r in db.tables.classes.values() if r.key == "company:software dept"]
    assert [p.full_name for p in placeholders] == ["Company:Software Dept"]
    assert "d" not in jobs  # it has a QBO Id
    assert db.row("b").name == "Backend"  # values as stored


def test_adoption_is_idempotent_and_a_dry_run_writes_nothing() -> None:
    db = _node_rows()
    dry = adopt_unsynced(db.uow, realm_id="9130", clock=FakeClock(), dry_run=True)
    assert (dry.queued, db.tables.jobs, db.row("f").key) == (3, {}, "")
    adopt_unsynced(db.uow, realm_id="9130", clock=FakeClock())
    jobs = dict(db.tables.jobs)
    again = adopt_unsynced(db.uow, realm_id="9130", clock=FakeClock())
    assert again.queued == 0
    assert dict(db.tables.jobs) == jobs
