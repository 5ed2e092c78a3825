"""No token value ever reaches a log line or an exception message."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from classsync.domain import ClassWrite, QboError
from tests.integration.qbo.conftest import Stack, unique

pytestmark = pytest.mark.integration


def test_tokens_stay_out_of_logs_and_errors(stack: Stack) -> None:
    errors: list[QboError] = []
    with capture_logs() as logs:
        created = stack.create()
        stack.gateway.read(stack.realm_id, created.id)
        for attempt in (
            lambda: stack.create(created.name),  # 6240
            lambda: stack.gateway.read(stack.realm_id, "987654321"),  # 610
        ):
            try:
                attempt()
            except QboError as exc:
                errors.append(exc)
        stack.sandbox.admin.expire_access_tokens(stack.realm_id)
        stack.gateway.update(  # 401 -> refresh -> retry
            stack.realm_id,
            ClassWrite(
                name=unique(), active=True, qbo_id=created.id, sync_token=created.sync_token
            ),
        )
        stack.sandbox.admin.revoke_tokens(stack.realm_id)
        try:
            stack.gateway.read(stack.realm_id, created.id)  # 401 -> invalid_grant
        except QboError as exc:
            errors.append(exc)

    stored = stack.store.load(stack.realm_id)
    assert stored is not None
    secrets = {
        stack.access_token,
        stack.refresh_token,
        str(stored.access_token),
        stored.refresh_token,
        "sandbox-client-secret",
    }
    assert len(errors) == 3
    assert any(entry["event"] == "qbo_token_refreshed" for entry in logs)
    texts = [repr(entry) for entry in logs]
    texts += [str(error) for error in errors] + [repr(error) for error in errors]
    texts += [repr(stored), stack.store.disconnected_message(stack.realm_id) or ""]
    for secret in secrets:
        assert all(secret not in text for text in texts), "a token leaked"
