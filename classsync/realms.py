"""`classsync realm add | list | remove`: connect, report and disconnect QBO companies (realms)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from classsync.bootstrap import Storage, auth_client_factory, build_storage
from classsync.config import Settings
from classsync.domain import QboDisconnected, QboError, RealmTokens
from classsync.logs import configure_logging
from classsync.qbo.oauth import revoke_token
from classsync.qbo.token_manager import TokenManager
from classsync.store.realm_report import RealmReport, realm_reports


class RealmCommandError(RuntimeError):
    """A realm command could not do its work; the message says why (never with a token)."""


def add_realm(settings: Settings, realm_id: str, refresh_token: str) -> None:
    """Store ``refresh_token`` for ``realm_id`` and prove it works with one refresh.

    The refresh rotates the token (docs/qbo.md, "OAuth tokens"), so the token given here is used
    once and the rotated one is what stays stored. A refused token leaves the realm DISCONNECTED.
    """
    realm_id, refresh_token = realm_id.strip(), refresh_token.strip()
    if not realm_id or not refresh_token:
        raise RealmCommandError("a realm id and a refresh token are both needed")
    storage = build_storage(settings, migrate=False)
    try:
        with storage.token_store.locked(realm_id) as realm:
            realm.save(RealmTokens(realm_id=realm_id, refresh_token=refresh_token))
        # No bootstrap token: only the token given here may connect this realm.
        manager = TokenManager(
            storage.token_store, auth_client_factory(settings), bootstrap_refresh_token=None
        )
        try:
            manager.access_token(realm_id)
        except QboDisconnected as error:
            msg = f"realm {realm_id} was not connected: {error}"
            raise RealmCommandError(msg) from None
        except QboError as error:
            msg = (
                f"realm {realm_id}'s token is stored but could not be verified ({error}); "
                "run the command again once QBO answers"
            )
            raise RealmCommandError(msg) from None
    finally:
        storage.engine.dispose()


def remove_realm(settings: Settings, realm_id: str) -> bool:
    """Revoke the realm's refresh token at Intuit and forget its tokens; its rows stay.

    Returns False when the realm has no tokens stored (nothing to revoke); it is marked
    DISCONNECTED all the same, so calls naming it are refused.
    """
    storage = build_storage(settings, migrate=False)
    try:
        tokens = storage.token_store.load(realm_id)
        if tokens is not None:
            try:
                revoke_token(auth_client_factory(settings)(), tokens.refresh_token)
            except QboError as error:
                msg = f"QBO did not revoke realm {realm_id}'s token ({error}); nothing changed"
                raise RealmCommandError(msg) from None
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        message = (
            f"removed with `classsync realm remove` on {when}; connect it again with "
            f"`classsync realm add {realm_id} --refresh-token TOKEN`"
        )
        known = storage.token_store.forget(realm_id, message)
        return tokens is not None and known
    finally:
        storage.engine.dispose()


def realm_list(settings: Settings, storage: Storage | None = None) -> list[dict[str, Any]]:
    """Every realm (connected, known from jobs, and QBO_REALM_ID) as JSON-ready dicts."""
    own = storage is None
    storage = storage or build_storage(settings, migrate=False)
    try:
        reports = realm_reports(storage.session_factory, also=(settings.qbo_realm_id,))
    finally:
        if own:
            storage.engine.dispose()
    return [_as_dict(report, settings) for report in reports]


def _as_dict(report: RealmReport, settings: Settings) -> dict[str, Any]:
    now = datetime.now(UTC).replace(tzinfo=None)
    age = None
    if report.oldest_pending is not None:
        age = round((now - report.oldest_pending).total_seconds(), 1)
    connected = report.status == "CONNECTED"
    return {
        "realm_id": report.realm_id,
        "default": report.realm_id == settings.qbo_realm_id,
        "status": report.status,
        "message": report.message,
        "last_refresh": _iso(report.changed_at) if connected else None,
        "backlog": report.backlog,
        "jobs": {k: report.jobs.get(k, 0) for k in ("PENDING", "IN_PROGRESS", "SYNCED", "FAILED")},
        "oldest_pending_age_seconds": age,
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.replace(tzinfo=UTC).isoformat(timespec="seconds")


def cmd_realm(args: argparse.Namespace) -> int:
    """realm add / list / remove."""
    from classsync.preflight import check_database, check_qbo_credentials, load_settings
    from classsync.realms import RealmCommandError, add_realm, realm_list, remove_realm

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    check_database(settings)
    try:
        if args.realm_command == "list":
            print(json.dumps(realm_list(settings), indent=2))
        elif args.realm_command == "add":
            check_qbo_credentials(settings, realm_required=False)
            add_realm(settings, args.realm_id, args.refresh_token)
            print(f"connected realm {args.realm_id}; tokens stored in the database")
        else:
            check_qbo_credentials(settings, realm_required=False)
            revoked = remove_realm(settings, args.realm_id)
            done = "token revoked at QBO" if revoked else "no token was stored"
            print(f"removed realm {args.realm_id} ({done}); its Classes stay in the database")
    except RealmCommandError as error:
        print(f"classsync realm {args.realm_command}: {error}", file=sys.stderr)
        return 1
    return 0


def add_realm_parser(sub: Any, command: Callable[..., Any], settings: Sequence[str]) -> None:
    """The `realm` subcommand and its actions, on the parser ``command`` makes."""
    realm = command(sub, "realm", "add, list or remove QBO companies (realms)", settings)
    realm.set_defaults(func=cmd_realm)
    actions = realm.add_subparsers(dest="realm_command", required=True)
    add = actions.add_parser(
        "add", help="connect a realm with a refresh token (verified by one refresh)"
    )
    add.add_argument("realm_id", help="the QBO company id (realmId)")
    add.add_argument("--refresh-token", required=True, help="a refresh token of that company")
    actions.add_parser("list", help="each realm: status, last refresh, backlog (never a token)")
    remove = actions.add_parser(
        "remove", help="revoke the realm's token at QBO and forget it (its Classes stay)"
    )
    remove.add_argument("realm_id", help="the QBO company id (realmId)")
