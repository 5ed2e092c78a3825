"""`classsync bench --smoke` runs every scenario end to end and writes a complete report."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from classsync.bench.cli import main

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_smoke_run_reports_every_scenario(tmp_path: Path) -> None:
    """Performance numbers are not asserted (they are benchmark figures, not timed tests)."""
    # CI exports TEST_DATABASE_URL; without it the bench finds a server by itself.
    argv = ["--smoke", "--out", str(tmp_path)]
    if os.environ.get("TEST_DATABASE_URL"):
        argv += ["--database-url", os.environ["TEST_DATABASE_URL"]]

    status = main(argv)

    report = json.loads((tmp_path / "report.json").read_text())
    assert report["errors"] == {}
    assert status == 0
    assert set(report["scenarios"]) == {"ingest", "sync", "overhead", "memory", "realms"}
    ingest = report["scenarios"]["ingest"]["runs"]
    assert [run["stored"] for run in ingest] == [run["classes"] for run in ingest]
    assert all(run["rows_in_database"] > 0 for run in ingest)
    sync_runs = {run["name"]: run for run in report["scenarios"]["sync"]["runs"]}
    assert set(sync_runs) == {"sync-scaled", "sync-real", "sync-batch", "sync-real-batch"}
    for run in sync_runs.values():
        assert run["finished"], run["name"]
        assert run["jobs"].get("SYNCED") == run["classes"], run["name"]
    assert report["scenarios"]["overhead"]["not_synced"] == 0
    memory = report["scenarios"]["memory"]["runs"]
    assert {run["mode"] for run in memory} == {"default", "per-request"}
    assert all(run["stored"] == run["classes"] and run["peak_rss_mb"] > 0 for run in memory)
    realms = report["scenarios"]["realms"]
    assert realms["finished"]
    assert realms["idle_realm_calls"] > 0
    assert realms["idle_realm_calls_not_synced"] == 0
    # Every busy realm's Classes, the warm-up Class and the idle realm's calls: all synced once.
    total = realms["realms"] * realms["classes_per_realm"] + 1 + realms["idle_realm_calls"]
    assert realms["jobs"] == {"SYNCED": total}
    measured = {row["scenario"] for row in report["targets"]}
    assert measured == {"a. ingest", "b. sync", "c. overhead", "d. memory", "e. realms"}
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
