"""Which QBO company (realm) a call is about: call metadata ``x-qbo-realm-id``, else the default."""

from __future__ import annotations

import grpc

REALM_KEY = "x-qbo-realm-id"


def call_realm(context: grpc.ServicerContext, default: str) -> str:
    """The realm named by the call's ``x-qbo-realm-id`` metadata; ``default`` when absent or blank."""
    for key, value in context.invocation_metadata() or ():
        if key == REALM_KEY:
            chosen = str(value).strip()
            if chosen:
                return chosen
    return default
