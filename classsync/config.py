"""Settings: the only reader of the environment and of `.env`."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from classsync.qbo.endpoints import intuit_environment, resolve_api_base_url

# The local emulator `classsync sandbox` listens here by default, and ships a development app and
# realm, so a fresh checkout runs with no Intuit account (classsync/sandbox/README.md).
DEV_SANDBOX_URL = "http://127.0.0.1:8765"
DEV_CLIENT_ID = "sandbox-client-id"
DEV_CLIENT_SECRET = "sandbox-client-secret"
DEV_REALM_ID = "9130350000000000001"
DEV_REFRESH_TOKEN = "sandbox-dev-refresh-token"
DEFAULT_DATABASE_URL = "sqlite:///./classsync.db"


class Settings(BaseSettings):
    """Every knob of classsync. Field names are the environment variable names."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # --- storage and transport ---------------------------------------------------------------
    database_url: str = Field(default=DEFAULT_DATABASE_URL, alias="DATABASE_URL")
    grpc_address: str = Field(default="127.0.0.1:50051", alias="GRPC_ADDRESS")
    grpc_max_workers: int = Field(default=100, ge=2, alias="GRPC_MAX_WORKERS")
    max_classes_per_request: int = Field(default=1000, ge=1, alias="MAX_CLASSES_PER_REQUEST")
    max_message_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, alias="MAX_MESSAGE_BYTES")
    response_wait_seconds: float = Field(default=30.0, ge=0, alias="RESPONSE_WAIT_SECONDS")
    shutdown_grace_seconds: float = Field(default=20.0, ge=0, alias="SHUTDOWN_GRACE_SECONDS")

    # --- QBO ---------------------------------------------------------------------------------
    qbo_environment: str = Field(
        default=f"{DEV_SANDBOX_URL}/.well-known/openid_configuration",
        validation_alias=AliasChoices("QBO_ENVIRONMENT", "ENV"),
    )
    qbo_api_base_url: str | None = Field(default=None, alias="QBO_API_BASE_URL")
    qbo_client_id: str = Field(
        default=DEV_CLIENT_ID, validation_alias=AliasChoices("QBO_CLIENT_ID", "CLIENT_ID")
    )
    qbo_client_secret: SecretStr = Field(
        default=SecretStr(DEV_CLIENT_SECRET),
        validation_alias=AliasChoices("QBO_CLIENT_SECRET", "CLIENT_SECRET"),
    )
    qbo_redirect_uri: str = Field(
        # Intuit refuses IP addresses in redirect URIs; localhost is accepted (development only).
        default="http://localhost:8766/callback",
        validation_alias=AliasChoices("QBO_REDIRECT_URI", "REDIRECT_URI"),
    )
    qbo_realm_id: str = Field(default=DEV_REALM_ID, alias="QBO_REALM_ID")
    qbo_refresh_token: SecretStr | None = Field(default=None, alias="QBO_REFRESH_TOKEN")
    qbo_minor_version: int = Field(default=75, ge=75, alias="QBO_MINOR_VERSION")
    qbo_timeout_seconds: float = Field(default=30.0, gt=0, alias="QBO_TIMEOUT_SECONDS")

    # --- sync engine -------------------------------------------------------------------------
    sync_workers: int = Field(default=10, ge=1, alias="SYNC_WORKERS")
    # Extra workers start while a realm with due work holds none (sync/worker_pool.py).
    sync_max_workers: int = Field(default=200, ge=1, alias="SYNC_MAX_WORKERS")
    sync_enabled: bool = Field(default=True, alias="SYNC_ENABLED")
    qbo_max_in_flight: int = Field(default=10, ge=1, alias="QBO_MAX_IN_FLIGHT")
    qbo_requests_per_minute: int = Field(default=500, ge=1, alias="QBO_REQUESTS_PER_MINUTE")
    qbo_rate_window_seconds: float = Field(default=60.0, gt=0, alias="QBO_RATE_WINDOW_SECONDS")
    qbo_use_batch: bool = Field(default=True, alias="QBO_USE_BATCH")
    qbo_batch_size: int = Field(default=30, ge=1, le=30, alias="QBO_BATCH_SIZE")
    sync_max_attempts: int = Field(default=20, ge=1, alias="SYNC_MAX_ATTEMPTS")
    sync_lease_seconds: float = Field(default=60.0, gt=0, alias="SYNC_LEASE_SECONDS")
    sync_poll_seconds: float = Field(default=1.0, gt=0, alias="SYNC_POLL_SECONDS")
    sync_backoff_base_seconds: float = Field(default=1.0, gt=0, alias="SYNC_BACKOFF_BASE_SECONDS")
    sync_backoff_max_seconds: float = Field(default=300.0, gt=0, alias="SYNC_BACKOFF_MAX_SECONDS")
    sync_throttle_seconds: float = Field(default=60.0, gt=0, alias="SYNC_THROTTLE_SECONDS")
    sync_stale_retries: int = Field(default=3, ge=0, alias="SYNC_STALE_RETRIES")

    # --- changes made in QBO (two-way) ----------------------------------------------------------
    # CDC poll per realm every N seconds (0 = off); the first poll runs at start (catch-up).
    qbo_cdc_interval_seconds: float = Field(default=300.0, ge=0, alias="QBO_CDC_INTERVAL_SECONDS")
    # host:port of the webhook listener (path /webhooks/qbo); None = no listener.
    webhook_address: str | None = Field(default=None, alias="WEBHOOK_ADDRESS")
    # The Intuit app's webhook verifier token (signs every delivery); never logged.
    qbo_webhook_verifier_token: SecretStr | None = Field(
        default=None, alias="QBO_WEBHOOK_VERIFIER_TOKEN"
    )

    # --- security and operations ---------------------------------------------------------------
    grpc_tls_cert_file: str | None = Field(default=None, alias="GRPC_TLS_CERT_FILE")
    grpc_tls_key_file: str | None = Field(default=None, alias="GRPC_TLS_KEY_FILE")
    grpc_auth_tokens: SecretStr | None = Field(default=None, alias="GRPC_AUTH_TOKENS")
    token_encryption_key: SecretStr | None = Field(default=None, alias="TOKEN_ENCRYPTION_KEY")
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
    log_format: Literal["auto", "json", "console"] = Field(default="auto", alias="LOG_FORMAT")
    # Start the local QBO emulator inside `classsync serve` (only ever when QBO_ENVIRONMENT is its
    # default address): unset = only with the default SQLite database; true = with any; false = never.
    sandbox_autostart: bool | None = Field(default=None, alias="SANDBOX_AUTOSTART")
    # false = `serve` does not migrate (the runtime database user needs no DDL rights); it then
    # refuses to start unless the schema is already at head (`classsync migrate` does it once).
    migrate_on_start: bool = Field(default=True, alias="MIGRATE_ON_START")

    # --- monitoring ----------------------------------------------------------------------------
    # /metrics, /healthz and /readyz listen here; empty = off.
    metrics_address: str = Field(default="127.0.0.1:9464", alias="METRICS_ADDRESS")
    # How often the health checker pings the database and reads the realm's state.
    health_check_seconds: float = Field(default=5.0, gt=0, alias="HEALTH_CHECK_SECONDS")

    @field_validator(
        "qbo_refresh_token",
        "grpc_auth_tokens",
        "token_encryption_key",
        "qbo_webhook_verifier_token",
        "sandbox_autostart",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator(
        "qbo_api_base_url",
        "grpc_tls_cert_file",
        "grpc_tls_key_file",
        "webhook_address",
        mode="before",
    )
    @classmethod
    def _empty_str_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _max_workers_cover_the_base(self) -> Settings:
        if self.sync_max_workers >= self.sync_workers:
            return self
        if "sync_max_workers" in self.model_fields_set:
            msg = (
                f"SYNC_MAX_WORKERS={self.sync_max_workers} is below "
                f"SYNC_WORKERS={self.sync_workers}: set it to at least SYNC_WORKERS "
                "(equal to it: no extra workers)"
            )
            raise ValueError(msg)
        self.sync_max_workers = self.sync_workers  # the default, below a large SYNC_WORKERS
        return self

    @model_validator(mode="after")
    def _webhooks_need_the_verifier_token(self) -> Settings:
        if self.webhook_address is None:
            return self
        _, _, port = self.webhook_address.rpartition(":")
        if not port.isdigit():
            msg = f"WEBHOOK_ADDRESS={self.webhook_address} needs host:port (e.g. 0.0.0.0:8080)"
            raise ValueError(msg)
        if self.qbo_webhook_verifier_token is None:
            msg = (
                "WEBHOOK_ADDRESS is set but QBO_WEBHOOK_VERIFIER_TOKEN is empty: "
                "every delivery would be refused"
            )
            raise ValueError(msg)
        return self

    # --- derived values ------------------------------------------------------------------------
    @property
    def intuit_environment(self) -> str:
        """The `environment=` argument for intuit-oauth: a keyword, or a discovery URL."""
        return intuit_environment(self.qbo_environment)

    @property
    def api_base_url(self) -> str:
        """Accounting API base (…/v3): explicit, Intuit's for sandbox/production, else beside discovery."""
        return resolve_api_base_url(self.qbo_environment, self.qbo_api_base_url)

    @property
    def uses_dev_sandbox(self) -> bool:
        """True when QBO is the emulator at its default loopback address (so `serve` may start it)."""
        return self.qbo_environment.startswith(DEV_SANDBOX_URL)

    @property
    def uses_default_database(self) -> bool:
        """True when DATABASE_URL is the default local SQLite file (a development setup)."""
        return self.database_url.strip() == DEFAULT_DATABASE_URL

    @property
    def should_autostart_sandbox(self) -> bool:
        """Whether `serve` starts the emulator: QBO is the emulator's default address, and either
        SANDBOX_AUTOSTART=true or (unset and) the database is the default SQLite file."""
        if not self.uses_dev_sandbox or self.sandbox_autostart is False:
            return False
        return self.sandbox_autostart is True or self.uses_default_database

    @property
    def bootstrap_refresh_token(self) -> str | None:
        """Refresh token to start from when none is stored: the setting, or the emulator's dev token."""
        if self.qbo_refresh_token is not None:
            return self.qbo_refresh_token.get_secret_value()
        return DEV_REFRESH_TOKEN if self.uses_dev_sandbox else None

    @property
    def auth_tokens(self) -> list[str]:
        """Caller bearer tokens (comma-separated setting); empty list = authentication off."""
        if self.grpc_auth_tokens is None:
            return []
        return [t.strip() for t in self.grpc_auth_tokens.get_secret_value().split(",") if t.strip()]
