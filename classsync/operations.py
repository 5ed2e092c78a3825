"""The operator commands that work on the database: status, retry, adopt (and the adopt hint)."""

from __future__ import annotations

import argparse
import json

from classsync.config import Settings


def _settings() -> Settings:
    from classsync.preflight import load_settings

    return load_settings()


def cmd_status(args: argparse.Namespace) -> int:
    """The facts /readyz and gRPC health use, plus the queue (never tokens); 1 when not ready."""
    from classsync.bootstrap import build_storage, status_report
    from classsync.preflight import check_token_encryption_key, parse_database_url

    settings = _settings()
    # An unreadable URL is a configuration error; an unreachable database is a fact to report.
    parse_database_url(settings)
    check_token_encryption_key(settings)
    storage = build_storage(settings, migrate=False)
    report, ready = status_report(settings, storage)
    storage.engine.dispose()
    print(json.dumps(report, indent=2))
    return 0 if ready else 1


def cmd_retry(args: argparse.Namespace) -> int:
    """Requeue FAILED jobs (all, or the given Class ids)."""
    from classsync.bootstrap import build_storage
    from classsync.preflight import (
        check_database,
        check_schema_at_head,
        check_token_encryption_key,
    )
    from classsync.sync.clock import SystemClock

    settings = _settings()
    check_token_encryption_key(settings)
    check_database(settings)
    check_schema_at_head(settings, remedy="run `classsync migrate` first", reason="")
    storage = build_storage(settings, migrate=False)
    with storage.uow() as uow:
        count = uow.jobs.requeue(
            failed_only=args.failed or not args.id,
            class_ids=args.id or [],
            now=SystemClock().now(),
        )
        uow.commit()
    print(f"requeued {count} job(s)")
    return 0


def cmd_adopt(args: argparse.Namespace) -> int:
    """Queue a sync job for every row with no QBO Id and no job (a Node database's leftovers)."""
    from classsync.bootstrap import build_storage
    from classsync.preflight import check_database
    from classsync.sync.adoption import adopt_unsynced
    from classsync.sync.clock import SystemClock

    settings = _settings()
    check_database(settings)
    storage = build_storage(settings, migrate=False)
    realm_id = args.realm or settings.qbo_realm_id
    report = adopt_unsynced(
        storage.uow, realm_id=realm_id, clock=SystemClock(), dry_run=args.dry_run
    )
    verb = "would queue" if args.dry_run else "queued"
    print(f"{verb} {report.queued} Class(es) for realm {realm_id}")
    if report.keyed:
        print(f"gave {report.keyed} row(s) with no name key their key")
    for class_id, reason in report.skipped:
        print(f"skipped {class_id}: {reason}")
    return 0


def hint_unsynced(settings: Settings) -> None:
    """Say so when rows wait for `classsync adopt` (a Node database's never-synced rows)."""
    from classsync.bootstrap import build_storage

    storage = build_storage(settings, migrate=False)
    try:
        with storage.uow() as uow:
            waiting = uow.classes.count_unsynced_without_job()
    finally:
        storage.engine.dispose()
    if waiting:
        print(
            f"{waiting} Class row(s) have no QBO Id and no sync job (stored but never synced, "
            "e.g. by the Node service): run `classsync adopt` to queue them"
        )
