"""Assemble the aiohttp application: OAuth, Class API and admin routes over one SandboxState."""

from __future__ import annotations

import asyncio

from aiohttp import web

from classsync.sandbox import admin, api, oauth
from classsync.sandbox.config import SandboxConfig
from classsync.sandbox.pipeline import STATE
from classsync.sandbox.state import SandboxState

# Batch bodies of 30 Classes are a few KB; this bound only stops abuse.
_MAX_BODY = 4 * 1024 * 1024


async def _on_startup(app: web.Application) -> None:
    app[STATE].attach(asyncio.get_running_loop())


async def _on_cleanup(app: web.Application) -> None:
    await app[STATE].webhooks.close()
    app[STATE].save()


def build_app(config: SandboxConfig, state: SandboxState | None = None) -> web.Application:
    """A ready-to-serve application; ``state`` defaults to a new one built from ``config``."""
    app = web.Application(client_max_size=_MAX_BODY)
    app[STATE] = state or SandboxState(config)
    oauth.add_routes(app)
    api.add_routes(app)
    admin.add_routes(app)
    app.on_startup.append(_on_startup)
    app.on_cleanup.append(_on_cleanup)
    return app
