"""What stands before every API call: counters, outage, bearer check, limits, latency, faults."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from classsync.sandbox import wire
from classsync.sandbox.config import SandboxConfig
from classsync.sandbox.realm import Realm
from classsync.sandbox.state import SandboxState
from classsync.sandbox.tokens import AccessDeniedError

STATE: web.AppKey[SandboxState] = web.AppKey("sandbox_state", SandboxState)
_TIDS = itertools.count(1)


@dataclass(slots=True)
class Call:
    """One authorised API call, handed to the endpoint handler."""

    request: web.Request
    state: SandboxState
    realm: Realm

    @property
    def config(self) -> SandboxConfig:
        """Options in force for this call."""
        return self.state.config


Endpoint = Callable[[Call], Awaitable[web.Response]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class DroppedError(Exception):
    """The connection was closed on purpose without an answer."""


def respond(status: int, body: bytes | str | dict[str, Any], content_type: str) -> web.Response:
    """A response carrying an intuit_tid header, as QBO's do (docs/qbo.md, "Errors")."""
    if isinstance(body, dict):
        body = json.dumps(body, separators=(",", ":"))
    data = body.encode() if isinstance(body, str) else body
    return web.Response(
        status=status,
        body=data,
        content_type=content_type,
        headers={"intuit_tid": f"sbx-{next(_TIDS)}"},
    )


def json_response(body: dict[str, Any], status: int = 200) -> web.Response:
    """A JSON response with QBO's headers."""
    return respond(status, body, wire.JSON_TYPE)


def fault_response(fault: wire.QboFaultError) -> web.Response:
    """A QBO Fault body with its HTTP status."""
    return json_response(fault.body(), fault.status)


def drop(request: web.Request) -> DroppedError:
    """Close the client connection with no response; returns the exception to raise."""
    protocol = request.protocol
    if protocol is not None:
        protocol.force_close()
    return DroppedError()


def server_error(config: SandboxConfig, status: int) -> web.Response:
    """An injected 5xx in the configured body format."""
    body, content_type = wire.server_error_body(config.error_body, status)
    return respond(status, body, content_type)


def throttled(state: SandboxState, reason: str) -> web.Response:
    """HTTP 429 ThrottleExceeded in the configured body format (docs/qbo.md, "Errors")."""
    config = state.config
    body, content_type = wire.throttle_body(config.throttle_body, reason)
    response = respond(429, body, content_type)
    if config.retry_after > 0:
        response.headers["Retry-After"] = str(config.retry_after)
    return response


def in_outage(state: SandboxState, realm_id: str | None) -> bool:
    """True while an outage window is open for this realm."""
    if state.outage_until <= time.monotonic():
        return False
    realms = state.config.fault_realms
    return not realms or realm_id is None or realm_id in realms


def outage_response(state: SandboxState, request: web.Request) -> web.Response:
    """What a caller sees during an outage: a 5xx or a dropped connection."""
    state.counters.injected["outage"] += 1
    if state.config.outage_mode == "drop":
        raise drop(request)
    return server_error(state.config, int(state.config.outage_mode))


def _targeted(config: SandboxConfig, realm_id: str, write: bool) -> bool:
    if config.fault_realms and realm_id not in config.fault_realms:
        return False
    return config.fault_target == "all" or (config.fault_target == "writes") == write


def _latency_seconds(state: SandboxState) -> float:
    config = state.config
    mean, spread = config.latency_ms, config.latency_jitter_ms
    kind = config.latency_distribution
    if kind == "uniform":
        value = mean + state.rng.uniform(-spread, spread)
    elif kind == "normal":
        value = state.rng.gauss(mean, spread)
    elif kind == "exponential":
        value = state.rng.expovariate(1.0 / mean) if mean > 0 else 0.0
    else:
        value = mean
    return max(0.0, value) / 1000.0


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def api(name: str, *, write: bool, batch: bool = False) -> Callable[[Endpoint], Handler]:
    """Wrap a Class-API endpoint in the checks and faults QBO (or this sandbox) applies."""

    def decorate(endpoint: Endpoint) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            state = request.app[STATE]
            realm_id = request.match_info["realm_id"]
            status: int | str = "dropped"
            try:
                response = await _guarded(request, state, realm_id, endpoint, write, batch)
                status = response.status
                return response
            except DroppedError:
                return web.Response()  # never sent: the transport is already closed
            finally:
                state.counters.request(name, status, realm_id)

        return handler

    return decorate


async def _guarded(
    request: web.Request,
    state: SandboxState,
    realm_id: str,
    endpoint: Endpoint,
    write: bool,
    batch: bool,
) -> web.Response:
    if in_outage(state, realm_id):
        return outage_response(state, request)
    try:
        token_realm = state.tokens.check_access(_bearer(request))
    except AccessDeniedError as denied:
        return json_response(wire.auth_failed_body(denied.detail), 401)
    if token_realm != realm_id:
        return json_response(
            wire.forbidden_body("The access token was issued for another company"), 403
        )
    config = state.config
    targeted = _targeted(config, realm_id, write)
    if targeted and state.throttle_until > time.monotonic():
        state.counters.injected["throttle"] += 1
        return throttled(state, "forced throttle window")
    refusal = state.limiter.admit(realm_id, config, batch=batch)
    if refusal is not None:
        return throttled(state, refusal)

    # In flight from here on: injected latency counts against max_in_flight.
    state.limiter.enter(realm_id)
    try:
        # Like QBO, work on a request once it has fully arrived: a caller that dies or times
        # out while the request is being worked on does not undo it (its outcome is unknown to
        # the caller). aiohttp keeps the body, so the endpoint's own read() gets it again.
        await request.read()
        if targeted and (config.latency_ms > 0 or config.latency_jitter_ms > 0):
            state.counters.injected["latency"] += 1
            await asyncio.sleep(_latency_seconds(state))
            config = state.config  # options may have changed while we slept
        if targeted and config.error_rate > 0 and state.rng.random() < config.error_rate:
            state.counters.injected["error"] += 1
            return server_error(config, state.rng.choice(config.error_statuses or (500,)))
        dropping = targeted and config.drop_rate > 0 and state.rng.random() < config.drop_rate
        if dropping and config.drop_mode == "before":
            state.counters.injected["drop"] += 1
            raise drop(request)
        response = await endpoint(Call(request, state, state.realm(realm_id)))
        if dropping:
            state.counters.injected["drop"] += 1
            raise drop(request)  # the write is applied; the caller never hears of it
        return response
    finally:
        state.limiter.leave(realm_id)
