"""One bench stack: a fresh database, a sandbox process, a realm and a server process."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from classsync.bench.database import fresh_database
from classsync.bench.processes import SandboxProcess, ServerProcess
from classsync.store.database import normalize_database_url


@dataclass
class Stack:
    """What a scenario drives and measures."""

    database_url: str
    sandbox: SandboxProcess
    realm_id: str
    server: ServerProcess

    def job_counts(self) -> dict[str, int]:
        """Sync jobs per status, read straight from the database."""
        return dict(self._query('SELECT status, count(*) FROM "ClasssyncJob" GROUP BY status'))

    def failure_codes(self) -> dict[str, int]:
        """Error codes of FAILED jobs (e.g. a throttle that ran out of attempts)."""
        return dict(
            self._query(
                'SELECT coalesce("lastErrorCode", \'\'), count(*) FROM "ClasssyncJob" '
                "WHERE status = 'FAILED' GROUP BY 1"
            )
        )

    def synced_times(self) -> list[float]:
        """When each job was recorded SYNCED, as seconds since the epoch, in order."""
        rows = self._query(
            'SELECT extract(epoch FROM "syncedAt") FROM "ClasssyncJob" '
            "WHERE status = 'SYNCED' ORDER BY \"syncedAt\""
        )
        return [float(row[0]) for row in rows]

    def stored_classes(self) -> int:
        """Rows in QBClass."""
        return int(self._query('SELECT count(*) FROM "QBClass"')[0][0])

    def _query(self, sql: str) -> list[Any]:
        engine = create_engine(normalize_database_url(self.database_url), poolclass=NullPool)
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(text(sql))]
        finally:
            engine.dispose()

    def realm_counters(self) -> dict[str, Any]:
        """The sandbox's counters for our realm (requests, classes_created, throttled...)."""
        counters = self.sandbox.admin.counters()
        return dict(counters.get("realms", {}).get(self.realm_id, {}))

    def postgres_cpu_seconds(self) -> float:
        """CPU used so far by the PostgreSQL backends serving this database (same machine only)."""
        name = make_url(normalize_database_url(self.database_url)).database or ""
        total = 0.0
        for process in psutil.process_iter(["cmdline", "cpu_times"]):
            cmdline = process.info.get("cmdline") or []
            times = process.info.get("cpu_times")
            if times is not None and any(name in part for part in cmdline):
                total += times.user + times.system
        return total


@contextlib.contextmanager
def stack(
    admin_url: str,
    workdir: Path,
    name: str,
    *,
    sandbox: dict[str, Any],
    server: dict[str, str],
) -> Iterator[Stack]:
    """Start everything a scenario needs, fresh; stop and drop it all afterwards."""
    with (
        fresh_database(admin_url) as url,
        SandboxProcess(sandbox, workdir, name=f"{name}-sandbox") as box,
    ):
        realm = box.admin.create_realm()
        with ServerProcess(
            database_url=url,
            sandbox_url=box.base_url,
            realm=realm,
            settings=server,
            workdir=workdir,
            name=f"{name}-server",
        ) as process:
            yield Stack(url, box, str(realm["realm_id"]), process)


def wait_until(predicate: Any, timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate`` until true or ``timeout`` s pass; returns its last verdict."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
