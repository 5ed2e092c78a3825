"""The /_sandbox/ admin HTTP API: reset, realms, classes, tokens, faults, options, counters."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from classsync.sandbox import changes
from classsync.sandbox.config import FAULT_FIELDS
from classsync.sandbox.pipeline import STATE
from classsync.sandbox.realm import ClassRecord, Realm
from classsync.sandbox.state import SandboxState
from classsync.sandbox.wire import QboFaultError

PREFIX = "/_sandbox"
# The fields an accountant edits on a Class in QBO itself.
_EDITABLE = frozenset({"Name", "Active", "ParentRef"})


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(data, separators=(",", ":")), content_type="application/json"
    )


def _error(message: str, status: int = 400) -> web.Response:
    return _json({"error": message}, status)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


def _state(request: web.Request) -> SandboxState:
    return request.app[STATE]


def _settings(state: SandboxState) -> dict[str, Any]:
    data = state.config.to_dict()
    data.update(state.windows())
    return data


async def health(request: web.Request) -> web.Response:
    """GET /_sandbox/health: the server answers."""
    return _json({"ok": True})


async def reset(request: web.Request) -> web.Response:
    """POST /_sandbox/reset: back to a just-started server (startup options, dev realm only)."""
    _state(request).reset()
    return _json({"ok": True})


async def get_config(request: web.Request) -> web.Response:
    """GET /_sandbox/config: every option in force (secrets masked) and open fault windows."""
    return _json(_settings(_state(request)))


async def patch_config(request: web.Request) -> web.Response:
    """PATCH/PUT /_sandbox/config: change any runtime option (limits, rules, token lifetimes...)."""
    state = _state(request)
    try:
        state.apply(await _body(request))
    except ValueError as error:
        return _error(str(error))
    return _json(_settings(state))


async def get_faults(request: web.Request) -> web.Response:
    """GET /_sandbox/faults: the fault options in force."""
    settings = _settings(_state(request))
    names = FAULT_FIELDS | {"outage_remaining", "throttle_remaining"}
    return _json({k: v for k, v in settings.items() if k in names})


async def put_faults(request: web.Request) -> web.Response:
    """PUT/PATCH /_sandbox/faults: set some fault options; the others keep their values."""
    state = _state(request)
    try:
        changes = await _body(request)
        unknown = sorted(set(changes) - FAULT_FIELDS)
        if unknown:
            raise ValueError(f"not fault options: {', '.join(unknown)} (use /_sandbox/config)")
        state.apply(changes)
    except ValueError as error:
        return _error(str(error))
    return await get_faults(request)


async def clear_faults(request: web.Request) -> web.Response:
    """DELETE /_sandbox/faults: no injected faults at all."""
    _state(request).clear_faults()
    return await get_faults(request)


async def counters(request: web.Request) -> web.Response:
    """GET /_sandbox/counters."""
    state = _state(request)
    return _json(
        {**state.counters.snapshot(state.limiter), "webhooks_pending": state.webhooks.pending}
    )


async def reset_counters(request: web.Request) -> web.Response:
    """DELETE /_sandbox/counters: zero every counter and limit window."""
    state = _state(request)
    state.counters = type(state.counters)()
    state.limiter.reset()
    return _json({"ok": True})


async def list_realms(request: web.Request) -> web.Response:
    """GET /_sandbox/realms: realm ids and class counts."""
    realms = _state(request).realms
    return _json([{"realm_id": k, "classes": len(v.classes)} for k, v in realms.items()])


async def create_realm(request: web.Request) -> web.Response:
    """POST /_sandbox/realms {"realm_id"?}: the realm (created if new) with fresh tokens."""
    state = _state(request)
    try:
        realm_id = str((await _body(request)).get("realm_id") or "") or state.new_realm_id()
    except ValueError as error:
        return _error(str(error))
    state.realm(realm_id)
    tokens = state.tokens.issue(realm_id, state.config)
    state.mark_dirty()
    return _json({"realm_id": realm_id, **tokens}, 201)


def _known_realm(request: web.Request) -> str:
    realm_id = request.match_info["realm_id"]
    if realm_id not in _state(request).realms:
        raise web.HTTPNotFound(text=json.dumps({"error": f"no realm {realm_id}"}))
    return realm_id


async def realm_classes(request: web.Request) -> web.Response:
    """GET /_sandbox/realms/{id}/classes: every class (inactive too) in QBO's JSON shape."""
    realm = _state(request).realms[_known_realm(request)]
    return _json([realm.to_json(record) for record in realm.classes.values()])


def _known_class(request: web.Request, realm: Realm) -> ClassRecord:
    class_id = request.match_info["class_id"]
    record = realm.find(class_id)
    if record is None:
        raise web.HTTPNotFound(text=json.dumps({"error": f"no class {class_id}"}))
    return record


async def _class_fields(request: web.Request) -> dict[str, Any]:
    fields = await _body(request)
    unknown = sorted(set(fields) - _EDITABLE)
    if unknown:
        raise ValueError(f"not editable here: {', '.join(unknown)} (use Name, Active, ParentRef)")
    return fields


async def realm_class(request: web.Request) -> web.Response:
    """GET /_sandbox/realms/{id}/classes/{class_id}: one class, whatever its state."""
    realm = _state(request).realms[_known_realm(request)]
    return _json(realm.to_json(_known_class(request, realm)))


async def create_class(request: web.Request) -> web.Response:
    """POST /_sandbox/realms/{id}/classes {"Name", "ParentRef"?, "Active"?}: made in QBO itself.

    Same rules, SyncToken, MetaData and webhook as a create through the API; a refusal is
    answered with QBO's Fault body and status. Counted as admin_changes, not as an API call.
    """
    state = _state(request)
    realm = state.realms[_known_realm(request)]
    try:
        record = changes.create(state, realm, await _class_fields(request))
    except ValueError as error:
        return _error(str(error))
    except QboFaultError as fault:
        return _json(fault.body(), fault.status)
    state.counters.realm(realm.realm_id, "admin_changes")
    return _json(realm.to_json(record), 201)


async def change_class(request: web.Request) -> web.Response:
    """PATCH /_sandbox/realms/{id}/classes/{class_id} {"Name"?, "Active"?, "ParentRef"?}.

    The accountant's edit: a sparse update with the current SyncToken, so it follows the API's
    rules and bumps SyncToken and LastUpdatedTime; FullyQualifiedName of the class and of its
    sub-classes follows. ``"ParentRef": null`` moves the class to the top level.
    """
    state = _state(request)
    realm = state.realms[_known_realm(request)]
    record = _known_class(request, realm)
    try:
        fields = await _class_fields(request)
        if not fields:
            raise ValueError("nothing to change: send Name, Active or ParentRef")
        body = {**fields, "Id": str(record.id), "SyncToken": str(record.sync_token)}
        record = changes.update(state, realm, {**body, "sparse": True})
    except ValueError as error:
        return _error(str(error))
    except QboFaultError as fault:
        return _json(fault.body(), fault.status)
    state.counters.realm(realm.realm_id, "admin_changes")
    return _json(realm.to_json(record))


async def issue_tokens(request: web.Request) -> web.Response:
    """POST /_sandbox/realms/{id}/tokens: a fresh token pair for an existing realm."""
    state = _state(request)
    realm_id = _known_realm(request)
    return _json({"realm_id": realm_id, **state.tokens.issue(realm_id, state.config)}, 201)


async def revoke_tokens(request: web.Request) -> web.Response:
    """POST /_sandbox/realms/{id}/revoke-tokens: every token of the realm stops working."""
    state = _state(request)
    count = state.tokens.revoke_realm(_known_realm(request))
    state.mark_dirty()
    return _json({"revoked": count})


async def expire_access_tokens(request: web.Request) -> web.Response:
    """POST /_sandbox/realms/{id}/expire-access-tokens: access tokens expire now."""
    state = _state(request)
    return _json({"expired": state.tokens.expire_access(_known_realm(request))})


async def index(request: web.Request) -> web.Response:
    """GET /: what this server is and where things are."""
    base = f"{request.scheme}://{request.host}"
    return _json(
        {
            "service": "classsync QBO sandbox",
            "discovery_url": base + "/.well-known/openid_configuration",
            "api_base_url": base + "/v3",
            "admin": base + PREFIX,
        }
    )


def add_routes(app: web.Application) -> None:
    """Register the admin API on ``app``."""
    router = app.router
    router.add_get("/", index)
    router.add_get(f"{PREFIX}/health", health)
    router.add_post(f"{PREFIX}/reset", reset)
    router.add_get(f"{PREFIX}/config", get_config)
    router.add_patch(f"{PREFIX}/config", patch_config)
    router.add_put(f"{PREFIX}/config", patch_config)
    router.add_get(f"{PREFIX}/faults", get_faults)
    router.add_put(f"{PREFIX}/faults", put_faults)
    router.add_patch(f"{PREFIX}/faults", put_faults)
    router.add_delete(f"{PREFIX}/faults", clear_faults)
    router.add_get(f"{PREFIX}/counters", counters)
    router.add_delete(f"{PREFIX}/counters", reset_counters)
    router.add_get(f"{PREFIX}/realms", list_realms)
    router.add_post(f"{PREFIX}/realms", create_realm)
    router.add_get(f"{PREFIX}/realms/{{realm_id}}/classes", realm_classes)
    router.add_post(f"{PREFIX}/realms/{{realm_id}}/classes", create_class)
    router.add_get(f"{PREFIX}/realms/{{realm_id}}/classes/{{class_id}}", realm_class)
    router.add_patch(f"{PREFIX}/realms/{{realm_id}}/classes/{{class_id}}", change_class)
    router.add_post(f"{PREFIX}/realms/{{realm_id}}/tokens", issue_tokens)
    router.add_post(f"{PREFIX}/realms/{{realm_id}}/revoke-tokens", revoke_tokens)
    router.add_post(f"{PREFIX}/realms/{{realm_id}}/expire-access-tokens", expire_access_tokens)
