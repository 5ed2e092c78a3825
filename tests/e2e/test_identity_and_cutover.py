"""Identity follows QBO (names differing only in case are one class), a QBO Id another row holds
ends FAILED with QB_ID_CONFLICT, and a Node database's never-synced rows reach QBO after adopt."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.pool import NullPool

from classsync.api.convert import FAILURE_MESSAGE, SUCCESS_MESSAGE
from classsync.cli import main
from classsync.store.migrate import upgrade
from classsync.store.models import QBClass, SyncJob, utcnow
from tests.e2e.conftest import Service, klass
from tests.integration.store_schema._pg_schema import execute_script
from tests.integration.store_schema.test_node_adoption import _NODE_DDL
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

BACKENDS = ["database_url", pytest.param("mysql_database_url", marks=pytest.mark.mysql)]


@pytest.fixture(params=BACKENDS)
def svc(request: pytest.FixtureRequest, service_factory: Any) -> Service:
    """A running classsync on PostgreSQL, then on MariaDB."""
    return service_factory(db_url=str(request.getfixturevalue(request.param)))  # type: ignore[no-any-return]


def _qbo_names(service: Service) -> list[str]:
    return sorted(c["FullyQualifiedName"] for c in service.qbo_classes())


def _store_row(service: Service, name: str, qb_id: str | None) -> str:
    """A row as the Node service left it: linked to a QBO Id, no job."""
    row_id = str(uuid.uuid4())
    with service.app.storage.session_factory.begin() as session:
        session.add(
            QBClass(
                id=row_id,
                name=name,
                full_name=name,
                full_name_key=name.casefold(),
                qb_id=qb_id,
                updated_at=utcnow(),
            )
        )
    return row_id


def _job(service: Service, class_id: str) -> SyncJob:
    with service.app.storage.session_factory() as session:
        return session.scalars(select(SyncJob).where(SyncJob.class_id == class_id)).one()


def _status(monkeypatch: pytest.MonkeyPatch, capsys: Any, service: Service) -> dict[str, Any]:
    monkeypatch.setenv("DATABASE_URL", service.settings.database_url)
    monkeypatch.setenv("QBO_REALM_ID", service.realm_id)
    capsys.readouterr()
    assert main(["status"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


# --- names that differ only in case ------------------------------------------------------------
def test_case_variants_in_one_request_are_one_class(svc: Service) -> None:
    [reply] = svc.send([klass("Marketing"), klass("marketing")])
    assert reply.message == SUCCESS_MESSAGE
    first, second = reply.results
    assert (first.id, first.qb_id) == (second.id, second.qb_id)
    assert [r.name for r in svc.rows()] == ["marketing"]  # the last casing sent
    assert _qbo_names(svc) == ["marketing"]


def test_a_case_variant_sent_later_renames_the_class_in_qbo(svc: Service) -> None:
    [first] = svc.send([klass("Marketing"), klass("Ads", "Marketing / Ads")])
    assert first.message == SUCCESS_MESSAGE
    [again] = svc.send([klass("MARKETING"), klass("Web", "marketing:Web")])
    assert again.message == SUCCESS_MESSAGE
    assert again.results[0].id == first.results[0].id
    assert again.results[0].qb_id == first.results[0].qb_id
    assert len(svc.rows()) == 3  # one parent for both children
    assert _qbo_names(svc) == ["MARKETING", "MARKETING:Ads", "MARKETING:Web"]
    assert all(j.attempts == 0 for j in (_job(svc, r.id) for r in again.results))


def test_a_qbo_class_in_other_casing_is_linked_not_duplicated(svc: Service) -> None:
    existing = svc.sandbox.admin.create_class(svc.realm_id, "SALES")
    [reply] = svc.send([klass("Sales")])
    assert reply.message == SUCCESS_MESSAGE
    assert reply.results[0].qb_id == existing["Id"]
    assert _qbo_names(svc) == ["Sales"]


# --- a QBO Id another row holds ------------------------------------------------------------------
def test_an_id_found_by_name_that_another_row_holds_fails_in_one_attempt(
    svc: Service, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    existing = svc.sandbox.admin.create_class(svc.realm_id, "Sales")
    holder = _store_row(svc, "Old Sales", existing["Id"])  # e.g. copied from another company
    [reply] = svc.send([klass("Sales"), klass("Fine")])
    assert reply.message == FAILURE_MESSAGE
    result, fine = reply.results
    assert (result.status, result.error_code) == ("FAILED", "QB_ID_CONFLICT")
    assert holder in result.error_message
    assert existing["Id"] in result.error_message
    assert fine.status == "SYNCED"
    job = _job(svc, result.id)
    assert (job.status, job.attempts, job.last_error_code) == ("FAILED", 1, "QB_ID_CONFLICT")
    report = _status(monkeypatch, capsys, svc)
    assert report["failed_by_code"] == {"QB_ID_CONFLICT": 1}


def test_an_id_qbo_answers_a_create_with_that_another_row_holds_fails_in_one_attempt(
    svc: Service,
) -> None:
    probe = svc.sandbox.admin.create_class(svc.realm_id, "Probe")
    next_id = str(int(probe["Id"]) + 1)  # the sandbox numbers a realm's classes in order
    holder = _store_row(svc, "Elsewhere", next_id)
    [reply] = svc.send([klass("Sales")])
    [result] = reply.results
    assert (result.status, result.error_code) == ("FAILED", "QB_ID_CONFLICT")
    assert holder in result.error_message
    job = _job(svc, result.id)
    assert (job.status, job.attempts) == ("FAILED", 1)


# --- Node cutover: rows stored but never synced --------------------------------------------------
def _insert_node_rows(url: str, rows: list[tuple[str, str | None, str | None]]) -> None:
    """Rows as the Node service (Prisma) writes them: it knows nothing of classsync's columns."""
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        for name, full_name, qb_id in rows:
            conn.execute(
                text(
                    'INSERT INTO "QBClass" ("id", "qbId", "name", "fullName", "isSubClass", '
                    '"updatedAt") VALUES (:id, :qb_id, :name, :full_name, :sub, now())'
                ),
                {
                    "id": str(uuid.uuid4()),
                    "qb_id": qb_id,
                    "name": name,
                    "full_name": full_name,
                    "sub": full_name is not None and name != full_name,
                },
            )
    engine.dispose()


_NODE_ROWS: list[tuple[str, str | None, str | None]] = [  # (name, fullName, qbId)
    ("Company", "Company", None),
    ("Software Dept", "Company / Software Dept", ""),
    ("Infra", "Ops:Infra", None),  # its parent was never stored
    ("Synced", "Synced", "4242"),  # synced by Node: left alone
]


def test_adopted_rows_with_no_qb_id_reach_qbo(
    empty_database_url: str,
    service_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    execute_script(empty_database_url, _NODE_DDL)
    _insert_node_rows(empty_database_url, _NODE_ROWS)
    upgrade(empty_database_url)
    # Rows the Node service wrote after the migration (e.g. during a rollback): no name key.
    _insert_node_rows(empty_database_url, [("Late", "Late", None), ("Late Synced", None, "4343")])
    monkeypatch.setenv("DATABASE_URL", empty_database_url)
    monkeypatch.setenv("QBO_REALM_ID", "placeholder")
    svc: Service = service_factory(db_url=empty_database_url)
    monkeypatch.setenv("QBO_REALM_ID", svc.realm_id)
    report = _status(monkeypatch, capsys, svc)
    assert report["unsynced_without_job"] == 4
    assert main(["adopt"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"queued 4 Class(es) for realm {svc.realm_id}\n")
    assert "gave 2 row(s) with no name key their key" in out
    expected = ["Company", "Company:Software Dept", "Late", "Ops", "Ops:Infra"]
    wait_for(
        lambda: len(svc.jobs()) == 5 and {j.status for j in svc.jobs()} == {"SYNCED"},
        timeout=30,
        what="the adopted rows' jobs to finish",
    )
    assert _qbo_names(svc) == expected
    rows = {r.full_name or r.name: r for r in svc.rows()}
    assert rows["Synced"].qb_id == "4242"
    assert all(r.qb_id for r in rows.values())
    # Five jobs: the four adopted rows and the "Ops" placeholder; none for synced rows.
    assert not {rows["Synced"].id, rows["Late Synced"].id} & {j.class_id for j in svc.jobs()}
    assert rows["Late Synced"].full_name_key == "late synced"  # a resend by name finds it
    after = _status(monkeypatch, capsys, svc)
    assert after["unsynced_without_job"] == 0
    assert main(["adopt"]) == 0
    assert capsys.readouterr().out.startswith("queued 0")
