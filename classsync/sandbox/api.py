"""The Class API under /v3/company/{realmId}/: create, read, update, query, batch, CDC."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from aiohttp import web

from classsync.sandbox import changes, query, wire
from classsync.sandbox.pipeline import (
    Call,
    fault_response,
    json_response,
    respond,
    throttled,
)
from classsync.sandbox.pipeline import api as endpoint
from classsync.sandbox.realm import Replay
from classsync.sandbox.wire import QboFaultError


def _text(raw: bytes) -> str:
    # requests sends a str body as latin-1 when it is not bytes; accept both encodings.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(_text(raw) or "{}")
    except json.JSONDecodeError as error:
        raise wire.bad_request(f"Request has invalid JSON: {error.msg}", 2010) from error
    if not isinstance(data, dict):
        raise wire.bad_request("Request body must be a JSON object", 2010)
    return data


def _write_one(call: Call, body: dict[str, Any], visible_below: int | None = None) -> Any:
    """Create or update one Class body; returns the stored record."""
    state, realm = call.state, call.realm
    if str(body.get("Id") or "").strip():
        record = changes.update(state, realm, body, visible_below=visible_below)
        state.counters.realm(realm.realm_id, "classes_updated")
    else:
        record = changes.create(state, realm, body, visible_below=visible_below)
        state.counters.realm(realm.realm_id, "classes_created")
    return record


async def _idempotent(
    call: Call, key_suffix: str, limit: int, raw: bytes, work: Any
) -> web.Response:
    """Run ``work`` once per requestid: a repeat gets the first answer, not a second write."""
    request_id = call.request.query.get("requestid", "")
    if not request_id:
        status, body = work()
        return json_response(body, status)
    if len(request_id) > limit:
        return fault_response(wire.bad_length("requestid", limit, len(request_id)))
    realm, config = call.realm, call.config
    key = request_id + key_suffix
    fingerprint = hashlib.sha256(raw).hexdigest()
    replay = realm.recall(key, config.requestid_retention)
    if replay is not None:
        if replay.fingerprint != fingerprint and config.requestid_conflict == "fault":
            return fault_response(
                wire.business_rule("This requestid was already used for a different request")
            )
        call.state.counters.duplicates_prevented += 1
        call.state.counters.realm(realm.realm_id, "duplicates_prevented")
        return respond(replay.status, replay.body, wire.JSON_TYPE)
    status, body = work()
    text = json.dumps(body, separators=(",", ":"))
    realm.remember(key, Replay(status, text, fingerprint, time.time()), config.requestid_retention)
    call.state.mark_dirty()
    return respond(status, text, wire.JSON_TYPE)


@endpoint("class.write", write=True)
async def write_class(call: Call) -> web.Response:
    """POST /class: create, or full/sparse update when the body has an Id."""
    raw = await call.request.read()

    def work() -> tuple[int, dict[str, Any]]:
        try:
            if call.request.query.get("operation", "").lower() == "delete":
                raise wire.unsupported("Class cannot be deleted; send Active=false instead")
            body = _json_object(raw)
            if isinstance(body.get("Class"), dict):
                body = body["Class"]
            record = _write_one(call, body)
        except QboFaultError as fault:
            return fault.status, fault.body()
        return 200, {"Class": call.realm.to_json(record), "time": wire.iso_millis()}

    return await _idempotent(call, "", call.config.requestid_max_length, raw, work)


@endpoint("class.read", write=False)
async def read_class(call: Call) -> web.Response:
    """GET /class/{id}."""
    class_id = call.request.match_info["class_id"]
    record = call.realm.find(class_id)
    if record is None:
        return fault_response(wire.object_not_found(class_id))
    return json_response({"Class": call.realm.to_json(record), "time": wire.iso_millis()})


@endpoint("query", write=False)
async def run_query(call: Call) -> web.Response:
    """GET ?query= or POST with the SELECT as a text body (as python-quickbooks sends it)."""
    text = call.request.query.get("query", "")
    if call.request.method == "POST" and not text:
        text = _text(await call.request.read())
    try:
        parsed = query.parse(text)
        result = query.run(
            call.realm, parsed, active_only_default=call.config.query_active_only_default
        )
    except QboFaultError as fault:
        return fault_response(fault)
    return json_response({"QueryResponse": result, "time": wire.iso_millis()})


def _batch_item(call: Call, item: Any, visible_below: int | None) -> dict[str, Any]:
    bid = str(item.get("bId", "")) if isinstance(item, dict) else ""
    try:
        if not isinstance(item, dict):
            raise wire.bad_request("Each BatchItemRequest must be an object", 2010)
        if "Query" in item:
            parsed = query.parse(str(item["Query"]))
            active_default = call.config.query_active_only_default
            result = query.run(call.realm, parsed, active_only_default=active_default)
            return {"bId": bid, "QueryResponse": result}
        if not isinstance(item.get("Class"), dict):
            raise wire.unsupported("The sandbox batch serves Class items and queries only")
        operation = str(item.get("operation", "")).lower()
        body = dict(item["Class"])
        if operation == "delete":
            raise wire.unsupported("Class cannot be deleted; send Active=false instead")
        if operation == "create":
            body.pop("Id", None)
        elif operation != "update":
            raise wire.bad_request(f"Unknown batch operation {operation!r}", 2010)
        elif not str(body.get("Id") or "").strip():
            raise wire.required_missing("Id")
        record = _write_one(call, body, visible_below)
        return {"bId": bid, "Class": call.realm.to_json(record)}
    except QboFaultError as fault:
        return {"bId": bid, "Fault": fault.fault()}


@endpoint("batch", write=True, batch=True)
async def run_batch(call: Call) -> web.Response:
    """POST /batch: items run in order; each failure is its own Fault inside an HTTP 200."""
    raw = await call.request.read()
    try:
        items = _json_object(raw).get("BatchItemRequest")
        if not isinstance(items, list):
            raise wire.required_missing("BatchItemRequest")
    except QboFaultError as fault:
        return fault_response(fault)
    config = call.config
    if config.limits_enabled and config.max_batch_items and len(items) > config.max_batch_items:
        reason = f"{len(items)} batch items; at most {config.max_batch_items}"
        if config.batch_oversize == "throttle":
            return throttled(call.state, reason)
        return fault_response(wire.bad_request(f"Batch size exceeded: {reason}", 2050))
    bids = ",".join(str(i.get("bId", "")) for i in items if isinstance(i, dict))

    def work() -> tuple[int, dict[str, Any]]:
        # Items cannot see objects created earlier in the same batch (docs/qbo.md, "Batch").
        visible = None if config.batch_items_see_earlier else call.realm.next_id
        answers = [_batch_item(call, item, visible) for item in items]
        return 200, {"BatchItemResponse": answers, "time": wire.iso_millis()}

    # A retry is the same request only with the same requestid and bIds (docs/qbo.md, "Batch").
    return await _idempotent(call, f"#batch:{bids}", config.batch_requestid_max_length, raw, work)


def _changed_classes(call: Call, since: float) -> dict[str, Any]:
    """One CDC QueryResponse entry for Class: the oldest changes first, at most cdc_max_objects.

    Sorted by (LastUpdatedTime, Id) and cut after cdc_max_objects, so a poller that moves its
    changedSince to the newest LastUpdatedTime it received always makes progress (changedSince
    is inclusive, so Classes of that same second come again; their SyncToken tells them apart).
    """
    realm, config = call.realm, call.config
    changed = sorted(
        (r for r in realm.classes.values() if int(r.updated) >= since),
        key=lambda record: (record.updated, record.id),
    )
    if config.limits_enabled and config.cdc_max_objects:
        changed = changed[: config.cdc_max_objects]
    if not changed:
        return {}
    return {
        "Class": [realm.to_json(record) for record in changed],
        "startPosition": 1,
        "maxResults": len(changed),
    }


@endpoint("cdc", write=False)
async def change_data_capture(call: Call) -> web.Response:
    """GET /cdc?entities=Class&changedSince=...: classes changed since then, inactive included.

    ``time`` in the answer is the sandbox's clock when it answered, also when the answer was
    cut at cdc_max_objects (then the newest LastUpdatedTime received is the safe next mark).
    """
    now = time.time()
    entities = [e.strip() for e in call.request.query.get("entities", "").split(",") if e.strip()]
    since_text = call.request.query.get("changedSince", "")
    if not entities:
        return fault_response(wire.required_missing("entities"))
    if not since_text:
        return fault_response(wire.required_missing("changedSince"))
    try:
        since = int(wire.parse_time(since_text))
    except ValueError:
        return fault_response(wire.bad_request(f"changedSince is not a date: {since_text!r}", 2010))
    config = call.config
    lookback = config.cdc_lookback_seconds if config.limits_enabled else 0.0
    if lookback and since < now - lookback:
        # QBO looks back at most 30 days (docs/qbo.md, "CDC and webhooks"); the fault it
        # answers to an older changedSince is unconfirmed: the sandbox picks a 400 with 2010.
        window = f"{lookback / 86400:g} days" if lookback >= 86400 else f"{lookback:g} seconds"
        return fault_response(
            wire.bad_request(f"changedSince must be within the last {window}", 2010)
        )
    answers = [
        _changed_classes(call, since) if entity.lower() == "class" else {} for entity in entities
    ]
    return json_response(
        {"CDCResponse": [{"QueryResponse": answers}], "time": wire.iso_millis(now)}
    )


@endpoint("unsupported", write=False)
async def unsupported_entity(call: Call) -> web.Response:
    """Any other entity or path: the sandbox emulates Class only."""
    return fault_response(
        wire.unsupported(f"The sandbox emulates Class only ({call.request.path})")
    )


def add_routes(app: web.Application) -> None:
    """Register the Class API on ``app``."""
    base = "/v3/company/{realm_id}"
    app.router.add_post(f"{base}/class", write_class)
    app.router.add_get(f"{base}/class/{{class_id}}", read_class)
    app.router.add_get(f"{base}/query", run_query)
    app.router.add_post(f"{base}/query", run_query)
    app.router.add_post(f"{base}/batch", run_batch)
    app.router.add_get(f"{base}/cdc", change_data_capture)
    app.router.add_route("*", f"{base}/{{tail:.*}}", unsupported_entity)
