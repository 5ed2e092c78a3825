"""`classsync realm add | list | remove`: connect, report and disconnect QBO companies (realms)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from classsync.bootstrap import Storage, build_storage
from classsync.config import Settings
from classsync.domain import QboDisconnected, QboError, RealmTokens
from classsync.qbo.endpoints import allow_plain_http_if_loopback
from classsync.qbo.oauth import make_auth_client_factory, revoke_token
from classsync.qbo.token_manager import TokenManager
from classsync.store.realm_report import RealmReport, realm_reports


class RealmCommandError(RuntimeError):
    """A realm command could not do its work; the message says why (never with a token)."""


def _auth_client_factory(settings: Settings) -> Any:
    allow_plain_http_if_loopback(settings.api_base_url, settings.intuit_environment)
    return make_auth_client_factory(
        settings.qbo_client_id,
        settings.qbo_client_secret.get_secret_value(),
        settings.qbo_redirect_uri,
        settings.intuit_environment,
        timeout_s=settings.qbo_timeout_seconds,
    )


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
            storage.token_store, _auth_client_factory(settings), bootstrap_refresh_token=None
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
                revoke_token(_auth_client_factory(settings)(), tokens.refresh_token)
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
