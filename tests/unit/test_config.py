"""Settings: Node aliases, derived URLs, and .env.example documenting every setting."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from classsync.config import Settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_env_example_lists_every_setting_with_a_comment() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    names = {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}
    expected = {field.alias for field in Settings.model_fields.values() if field.alias}
    expected |= {
        field.validation_alias.choices[0]  # type: ignore[union-attr]
        for field in Settings.model_fields.values()
        if field.alias is None and field.validation_alias is not None
    }
    assert names == expected
    # Each setting sits under a comment (settings of one group may share it).
    for index, line in enumerate(lines):
        if line and not line.startswith("#"):
            above = index - 1
            while above >= 0 and lines[above] and not lines[above].startswith("#"):
                above -= 1
            assert above >= 0, f"{line} has no comment above it"
            assert lines[above].startswith("#"), f"{line} has no comment above it"


def test_node_env_names_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "CLIENT_ID": "node-id",
        "CLIENT_SECRET": "node-secret",
        "REDIRECT_URI": "https://example.test/cb",
        "ENV": "production",
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.qbo_client_id == "node-id"
    assert settings.qbo_client_secret.get_secret_value() == "node-secret"
    assert settings.qbo_redirect_uri == "https://example.test/cb"
    assert settings.intuit_environment == "production"
    assert settings.api_base_url == "https://quickbooks.api.intuit.com/v3"
    assert settings.bootstrap_refresh_token is None  # no dev token against real QBO
    assert "node-secret" not in repr(settings)


def test_defaults_point_at_the_local_sandbox() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.uses_dev_sandbox
    assert settings.api_base_url == "http://127.0.0.1:8765/v3"
    assert settings.database_url == "sqlite:///./classsync.db"
    assert settings.grpc_address == "127.0.0.1:50051"


def test_caller_tokens_are_a_comma_separated_list() -> None:
    settings = Settings(_env_file=None, GRPC_AUTH_TOKENS="a, b,,c")  # type: ignore[call-arg]
    assert settings.auth_tokens == ["a", "b", "c"]


def test_a_webhook_listener_needs_an_address_with_a_port_and_the_verifier_token() -> None:
    import pydantic

    with pytest.raises(pydantic.ValidationError, match="QBO_WEBHOOK_VERIFIER_TOKEN"):
        Settings(_env_file=None, WEBHOOK_ADDRESS="127.0.0.1:8080")  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError, match="host:port"):
        Settings(
            _env_file=None, WEBHOOK_ADDRESS="127.0.0.1", QBO_WEBHOOK_VERIFIER_TOKEN="s3cret-tok"
        )  # type: ignore[call-arg]
    ok = Settings(
        _env_file=None, WEBHOOK_ADDRESS="0.0.0.0:8080", QBO_WEBHOOK_VERIFIER_TOKEN="s3cret-tok"
    )  # type: ignore[call-arg]
    assert ok.qbo_webhook_verifier_token is not None
    assert "s3cret-tok" not in repr(ok)
    assert Settings(_env_file=None).qbo_cdc_interval_seconds == 300  # type: ignore[call-arg]


def test_max_sync_workers_cover_the_base() -> None:
    assert Settings(_env_file=None).sync_max_workers == 200  # type: ignore[call-arg]
    # A large pool with no cap set: the cap follows, rather than refusing to start.
    assert Settings(_env_file=None, SYNC_WORKERS=300).sync_max_workers == 300  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="SYNC_MAX_WORKERS=3 is below SYNC_WORKERS=4"):
        Settings(_env_file=None, SYNC_WORKERS=4, SYNC_MAX_WORKERS=3)  # type: ignore[call-arg]
