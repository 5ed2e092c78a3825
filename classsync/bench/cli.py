"""`classsync bench`: run the scenarios, print the table, write report.json and chart.png."""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from classsync.bench import realm_scenario, report, scenarios
from classsync.bench.database import server_url
from classsync.bench.settings import BenchSettings, smoke_settings
from classsync.bench.settle import settle

SCENARIOS: dict[str, Callable[[BenchSettings, str, Path], dict[str, Any]]] = {
    "ingest": scenarios.ingest,
    "sync": scenarios.sync,
    "overhead": scenarios.overhead,
    "memory": scenarios.memory,
    "realms": realm_scenario.realms,
}


def build_parser() -> argparse.ArgumentParser:
    """Options of `classsync bench`."""
    parser = argparse.ArgumentParser(prog="classsync bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a tiny run of every scenario (CI)")
    parser.add_argument("--out", default="bench-out", help="output directory (default bench-out)")
    parser.add_argument(
        "--only", action="append", choices=sorted(SCENARIOS), help="run only this scenario"
    )
    parser.add_argument("--latency-ms", type=float, help="sandbox latency for the sync runs")
    parser.add_argument("--ceiling", type=int, help="scaled ceiling, requests/min per realm")
    parser.add_argument("--sync-classes", type=int, help="Classes in the scaled sync run")
    parser.add_argument("--real-classes", type=int, help="Classes in the 500/min sync run")
    parser.add_argument(
        "--real-batch-classes", type=int, help="Classes in the 500/min batch sync run"
    )
    parser.add_argument(
        "--sync-run",
        action="append",
        choices=scenarios.SYNC_RUNS,
        help="with --only sync: make only this sync run (repeatable; default all four)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL"),
        help="PostgreSQL server to create throwaway databases on (default: BENCH_DATABASE_URL, "
        "else 127.0.0.1:5432, else a server started from the local binaries)",
    )
    return parser


def _settings(args: argparse.Namespace) -> BenchSettings:
    base = smoke_settings() if args.smoke else BenchSettings()
    changes = {
        "sync_latency_ms": args.latency_ms,
        "sync_ceiling_per_minute": args.ceiling,
        "sync_classes": args.sync_classes,
        "real_classes": args.real_classes,
        "real_batch_classes": args.real_batch_classes,
        "sync_runs": tuple(args.sync_run) if args.sync_run else None,
    }
    return dataclasses.replace(base, **{k: v for k, v in changes.items() if v is not None})


def _machine() -> str:
    return f"{os.cpu_count()} cores, {platform.system()} {platform.release()}"


def main(argv: list[str]) -> int:
    """Run the bench; 0 when every scenario ran (targets missed are reported, not errors)."""
    args = build_parser().parse_args(argv)
    cfg = _settings(args)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    chosen = args.only or list(SCENARIOS)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "meta": {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "smoke": args.smoke,
            "machine": _machine(),
            "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "settings": dataclasses.asdict(cfg),
        },
        "scenarios": {},
        "errors": {},
    }
    with server_url(args.database_url) as (admin_url, source):
        result["meta"]["postgres"] = source
        for position, name in enumerate(chosen):
            if position:  # the scenario before may still be flushing: see bench/settle.py
                waited = settle(admin_url, max_wait_s=5 if args.smoke else 60)
                result["meta"].setdefault("settled_s", {})[name] = waited
            print(f"classsync bench: {name} ...", file=sys.stderr, flush=True)
            began = time.perf_counter()
            try:
                result["scenarios"][name] = SCENARIOS[name](cfg, admin_url, out)
            except Exception as error:  # report the failure, run the other scenarios
                result["errors"][name] = f"{type(error).__name__}: {error}"
            print(
                f"classsync bench: {name} done in {time.perf_counter() - began:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    result["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    result["meta"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    rows = report.targets(result)
    result["targets"] = rows
    report.write_json(result, out / "report.json")
    report.write_chart(result, out / "chart.png")
    print(report.table(rows))
    for name, message in result["errors"].items():
        print(f"scenario {name} failed: {message}")
    print(
        f"\nreport: {out / 'report.json'}  chart: {out / 'chart.png'}  ({result['meta']['seconds']} s)"
    )
    return 1 if result["errors"] else 0
