"""Fault-test toolkit: stream Classes, wait for the queue to drain, audit 0 lost / 0 duplicate."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from classsync.api._generated import class_service_pb2 as pb
from classsync.api._generated import class_service_pb2_grpc as pb_grpc
from classsync.domain import SyncStatus
from classsync.store.models import QBClass, SyncJob
from tests.e2e.conftest import klass
from tests.support.waiting import wait_for

__all__ = ["wait_for"]  # re-exported: the fault tests import every helper from here

ROOT = Path(__file__).resolve().parents[2]
FIGURES_FILE = ROOT / "fault-figures.json"
# Figures recorded in this session, printed by tests/faults/conftest.py's terminal summary.
SESSION_FIGURES: dict[str, dict[str, Any]] = {}
_FIGURES_LOCK = threading.Lock()
# Answer as soon as the Classes are stored: the tests poll the database for the sync instead.
NO_WAIT = ("x-classsync-wait-seconds", "0")


# --- what to send ------------------------------------------------------------------------------


def class_tree(prefix: str, count: int, *, fanout: int = 10) -> list[dict[str, Any]]:
    """``count`` Classes: top-level parents, each followed by ``fanout - 1`` sub-classes.

    Parents come before their children in the list, but sub-classes make the engine order its
    work (parent first), so faults can land between a parent and its child.
    """
    classes: list[dict[str, Any]] = []
    parent = ""
    for index in range(count):
        if index % fanout == 0:
            parent = f"{prefix}-P{index // fanout:04d}"
            classes.append(klass(parent))
        else:
            classes.append(klass(f"{prefix}-C{index:05d}", f"{parent}:{prefix}-C{index:05d}"))
    return classes


def chunked(items: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    """Split into ClassRequests of at most ``size`` Classes."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def requests_of(chunks: Iterable[list[dict[str, Any]]]) -> Iterator[pb.ClassRequest]:
    """Wire ClassRequests for lists of Class dicts."""
    for chunk in chunks:
        yield pb.ClassRequest(classes=[pb.Class(**c) for c in chunk])


def stream(
    port: int,
    chunks: list[list[dict[str, Any]]],
    *,
    pause: float = 0.0,
    on_sent: Callable[[int], None] | None = None,
    timeout: float = 60.0,
    metadata: tuple[tuple[str, str], ...] = (NO_WAIT,),
) -> list[pb.ClassResponse]:
    """Send ``chunks`` as one CreateClass stream (``pause`` s between requests); all responses.

    ``on_sent(n)`` runs after the n-th request is handed to gRPC (1-based): the hook the tests use
    to start a fault "in the middle" of the stream.
    """

    def generate() -> Iterator[pb.ClassRequest]:
        for number, message in enumerate(requests_of(chunks), start=1):
            yield message
            if on_sent is not None:
                on_sent(number)
            if pause:
                time.sleep(pause)

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.ClassServiceStub(channel)
        return list(stub.CreateClass(generate(), metadata=metadata, timeout=timeout))


def accepted_ids(responses: Iterable[pb.ClassResponse]) -> set[str]:
    """Local ids of every Class the server stored (synced or still pending)."""
    return {r.id for reply in responses for r in reply.results if r.id}


# --- waiting -----------------------------------------------------------------------------------


def db_engine(database_url: str) -> Engine:
    """An engine of the test's own (NullPool: nothing lingers to block the database drop)."""
    return create_engine(database_url, poolclass=NullPool)


def job_counts(engine: Engine) -> dict[str, int]:
    """Jobs per status."""
    with engine.connect() as conn:
        rows = conn.execute(select(SyncJob.status, func.count()).group_by(SyncJob.status))
        return {status: int(count) for status, count in rows}


def wait_until_settled(engine: Engine, *, expected_rows: int, timeout: float) -> float:
    """Poll until ``expected_rows`` jobs exist and none is pending; seconds waited.

    Raises AssertionError with the job counts when ``timeout`` runs out (bounded, never hangs).
    """
    started = time.monotonic()
    deadline = started + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        counts = job_counts(engine)
        total = sum(counts.values())
        open_jobs = total - counts.get(SyncStatus.SYNCED.value, 0)
        open_jobs -= counts.get(SyncStatus.FAILED.value, 0)
        if total >= expected_rows and open_jobs == 0:
            return time.monotonic() - started
        time.sleep(0.2)
    msg = f"jobs not settled after {timeout:.0f} s (want {expected_rows} rows): {counts}"
    raise AssertionError(msg)


# --- the audit ---------------------------------------------------------------------------------


@dataclass
class Audit:
    """0 lost / 0 duplicate, checked in the database and in the sandbox (through its admin API)."""

    rows: int
    synced: int
    sandbox_classes: int
    duplicates: int
    lost: int
    problems: list[str] = field(default_factory=list)


def _audit_rows(engine: Engine) -> list[Any]:
    """Every Class row with its job's columns, read straight from the tables."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(
                    QBClass.id.label("id"),
                    QBClass.qb_id.label("qb_id"),
                    QBClass.full_name_key.label("full_name_key"),
                    QBClass.version_token.label("version_token"),
                    QBClass.is_active.label("is_active"),
                    SyncJob.status.label("status"),
                    SyncJob.lease_owner.label("lease_owner"),
                    SyncJob.lease_expires_at.label("lease_expires_at"),
                    SyncJob.attempts.label("attempts"),
                    SyncJob.generation.label("generation"),
                    SyncJob.outcome_unknown.label("outcome_unknown"),
                    SyncJob.last_error_code.label("last_error_code"),
                    SyncJob.synced_at.label("synced_at"),
                ).outerjoin(SyncJob, SyncJob.class_id == QBClass.id)
            )
        )


def _job_problems(rows: list[Any], *, max_attempts: int, max_generation: int) -> list[str]:
    """A SYNCED job must be fully released: no lease, no outcome-unknown flag, no error."""
    checks: dict[str, Callable[[Any], bool]] = {
        "keeps a lease owner": lambda r: r.lease_owner is not None,
        "keeps a lease expiry": lambda r: r.lease_expires_at is not None,
        "is still flagged outcome-unknown": lambda r: bool(r.outcome_unknown),
        "keeps a last error": lambda r: r.last_error_code is not None,
        "has no syncedAt": lambda r: r.synced_at is None,
        f"has attempts outside 0..{max_attempts}": lambda r: not 0 <= r.attempts <= max_attempts,
        f"has a generation outside 1..{max_generation}": lambda r: (
            not 1 <= r.generation <= max_generation
        ),
    }
    synced = [r for r in rows if r.status == SyncStatus.SYNCED.value]
    problems = []
    for what, broken in checks.items():
        bad = [r.full_name_key for r in synced if broken(r)]
        if bad:
            problems.append(f"{len(bad)} SYNCED jobs {what}, e.g. {bad[:3]}")
    return problems


def _link_problems(rows: list[Any], qbo_by_id: dict[str, dict[str, Any]]) -> list[str]:
    """Each linked row agrees with the Class QBO holds under its qbId (name, token, Active)."""
    problems = []
    for row in rows:
        if not row.qb_id:
            continue
        held = qbo_by_id.get(row.qb_id)
        if held is None:
            problems.append(
                f"row {row.full_name_key!r} points at qbId {row.qb_id} the sandbox lacks"
            )
        elif held["FullyQualifiedName"].casefold() != row.full_name_key:  # the key is case-folded
            problems.append(
                f"row {row.full_name_key!r} is linked to {held['FullyQualifiedName']!r} in QBO"
            )
        elif row.status == SyncStatus.SYNCED.value and (
            str(row.version_token) != held["SyncToken"] or bool(row.is_active) != held["Active"]
        ):
            problems.append(
                f"row {row.full_name_key!r} has versionToken={row.version_token} "
                f"isActive={row.is_active}, QBO holds SyncToken={held['SyncToken']} "
                f"Active={held['Active']}"
            )
    return problems


def _duplicate_problems(rows: list[Any], qbo: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """Names QBO holds twice, rows sharing a key or qbId, QBO classes no row points at."""
    duplicates = 0
    problems = []
    fqn_counts = Counter(c["FullyQualifiedName"] for c in qbo)
    doubled = {name: n for name, n in fqn_counts.items() if n > 1}
    if doubled:
        duplicates += sum(n - 1 for n in doubled.values())
        problems.append(f"sandbox holds names more than once: {dict(list(doubled.items())[:5])}")
    for label, values in (
        ("fullNameKey", [r.full_name_key for r in rows]),
        ("qbId", [r.qb_id for r in rows if r.qb_id]),
    ):
        repeated = {v: n for v, n in Counter(values).items() if n > 1}
        if repeated:
            duplicates += sum(n - 1 for n in repeated.values())
            problems.append(f"rows share a {label}: {dict(list(repeated.items())[:5])}")
    linked = {r.qb_id for r in rows if r.qb_id}
    orphans = [c["FullyQualifiedName"] for c in qbo if c["Id"] not in linked]
    if orphans:
        duplicates += len(orphans)
        problems.append(f"{len(orphans)} sandbox classes no row points at, e.g. {orphans[:5]}")
    return duplicates, problems


def audit(
    engine: Engine,
    admin: Any,
    realm_id: str,
    accepted: Iterable[str] = (),
    *,
    max_attempts: int = 40,
    max_generation: int = 1,
) -> Audit:
    """Compare every row, job and sandbox class; list every way a Class was lost or doubled.

    Lost: an accepted id without a row; a row without a job, not SYNCED, or without a qbId.
    Duplicate: two sandbox classes with one FullyQualifiedName; two rows with one key or qbId;
    a sandbox class no row points at. Also a problem: a row whose qbId the sandbox does not
    hold (or holds under another name, SyncToken or Active); a SYNCED job that still holds a
    lease, an outcome-unknown flag or an error, or whose attempts/generation are out of range
    (``max_generation``: how many times the test sent the same Class).
    The sandbox side is read over HTTP through its admin API, never through classsync.
    """
    rows = _audit_rows(engine)
    qbo = admin.classes(realm_id)
    problems: list[str] = []
    lost = 0
    missing = set(accepted) - {row.id for row in rows}
    if missing:
        lost += len(missing)
        problems.append(f"{len(missing)} accepted ids have no row, e.g. {sorted(missing)[:3]}")
    unsynced = [row for row in rows if row.status != SyncStatus.SYNCED.value or not row.qb_id]
    if unsynced:
        lost += len(unsynced)
        sample = [(r.full_name_key, r.status, r.qb_id) for r in unsynced[:3]]
        problems.append(f"{len(unsynced)} rows are not SYNCED with a qbId, e.g. {sample}")
    duplicates, doubled = _duplicate_problems(rows, qbo)
    problems += doubled
    problems += _link_problems(rows, {c["Id"]: c for c in qbo})
    problems += _job_problems(rows, max_attempts=max_attempts, max_generation=max_generation)
    synced = sum(1 for row in rows if row.status == SyncStatus.SYNCED.value and row.qb_id)
    return Audit(
        rows=len(rows),
        synced=synced,
        sandbox_classes=len(qbo),
        duplicates=duplicates,
        lost=lost,
        problems=problems,
    )


# --- figures -----------------------------------------------------------------------------------


@dataclass
class Figures:
    """What one fault test reports: Classes sent, synced, duplicates, time to recover."""

    test: str
    fault: str
    sent: int
    accepted: int
    synced: int
    lost: int
    duplicates: int
    recover_seconds: float
    wall_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def record(figures: Figures) -> None:
    """Keep the figures for the terminal summary and merge them into ``fault-figures.json``."""
    entry = asdict(figures)
    entry["recover_seconds"] = round(figures.recover_seconds, 2)
    entry["wall_seconds"] = round(figures.wall_seconds, 2)
    entry["recorded_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with _FIGURES_LOCK:
        SESSION_FIGURES[figures.test] = entry
        try:
            stored = json.loads(FIGURES_FILE.read_text())
        except (OSError, ValueError):
            stored = {}
        if not isinstance(stored, dict):
            stored = {}
        stored[figures.test] = entry
        FIGURES_FILE.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")


def sandbox_figures(admin: Any, realm_id: str) -> dict[str, Any]:
    """The sandbox counters worth reporting for one realm."""
    counters = admin.counters()
    realm = counters["realms"].get(realm_id, {})
    return {
        "qbo_requests": realm.get("requests", 0),
        "qbo_classes_created": realm.get("classes_created", 0),
        "qbo_duplicates_prevented": realm.get("duplicates_prevented", 0),
        "qbo_throttled": realm.get("throttled", 0),
        "qbo_max_in_flight": realm.get("max_in_flight", 0),
        "qbo_token_refreshes": realm.get("token_refreshes", 0),
        "injected": counters.get("injected", {}),
    }
