"""SandboxConfig: every option of the QBO emulator, its default, help text and coercion."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# Groups drive the CLI help layout and what the admin API may change at runtime.
SERVER, OAUTH, RULES, LIMITS, FAULTS = "server", "oauth", "rules", "limits", "faults"
WEBHOOKS = "webhooks"
GROUP_TITLES = {
    SERVER: "server",
    OAUTH: "OAuth 2.0 (development app, realm and token lifetimes)",
    RULES: "QBO rules (where QBO's behaviour is undocumented, the strict choice is the default)",
    LIMITS: "limits (QBO's published values; 0 turns one off)",
    FAULTS: "faults on demand (also settable at runtime: PUT /_sandbox/faults)",
    WEBHOOKS: "webhooks (signed notifications of every Class change, sent to webhook-url)",
}
# Options that only make sense before the socket is bound or the state file is read.
STARTUP_ONLY = frozenset({"host", "port", "state_file", "access_log"})


def _opt(default: Any, help_text: str, group: str, choices: tuple[str, ...] = ()) -> Any:
    return field(default=default, metadata={"help": help_text, "group": group, "choices": choices})


@dataclass(slots=True)
class SandboxConfig:
    """Every sandbox option. Defaults are QBO's published values (docs/qbo.md)."""

    # --- server
    host: str = _opt("127.0.0.1", "address to listen on", SERVER)
    port: int = _opt(8765, "TCP port; 0 picks a free one", SERVER)
    public_url: str = _opt(
        "", "base URL advertised in the discovery document (default: from the Host header)", SERVER
    )
    state_file: str = _opt(
        "",
        "JSON file that keeps realms, classes and tokens across restarts (default: memory)",
        SERVER,
    )
    access_log: bool = _opt(False, "log every request (slower)", SERVER)
    seed: int = _opt(-1, "random seed for injected faults; -1 seeds from the OS", SERVER)

    # --- OAuth
    client_id: str = _opt("sandbox-client-id", "client_id of the development app", OAUTH)
    client_secret: str = _opt(
        "sandbox-client-secret", "client_secret of the development app", OAUTH
    )
    dev_realm_id: str = _opt(
        "9130350000000000001", "development realm present on every start", OAUTH
    )
    dev_refresh_token: str = _opt(
        "sandbox-dev-refresh-token",
        "standing refresh token of the dev realm: keeps working after use ('' disables it)",
        OAUTH,
    )
    access_token_ttl: float = _opt(3600.0, "access token lifetime in seconds", OAUTH)
    refresh_token_ttl: float = _opt(
        8726400.0, "refresh token lifetime in seconds (100 days)", OAUTH
    )
    rotate_refresh_tokens: bool = _opt(True, "issue a new refresh token on every refresh", OAUTH)
    refresh_token_grace: float = _opt(
        0.0,
        "seconds a superseded refresh token keeps working (QBO reportedly ~24 h; 0 is strictest)",
        OAUTH,
    )
    auth_code_ttl: float = _opt(300.0, "authorization code lifetime in seconds", OAUTH)

    # --- QBO rules
    max_name_length: int = _opt(100, "longest Class Name accepted (fault 2050 beyond)", RULES)
    max_depth: int = _opt(5, "deepest sub-class level", RULES)
    reject_colon_in_name: bool = _opt(True, "refuse ':' in a Name with fault 2040", RULES)
    reject_control_chars: bool = _opt(True, "refuse tabs/newlines in a Name with fault 2040", RULES)
    duplicate_name_scope: str = _opt(
        "siblings", "where a Name must be unique (fault 6240)", RULES, ("siblings", "company")
    )
    duplicate_names_case_sensitive: bool = _opt(
        False, "treat 'East' and 'east' as different names", RULES
    )
    inactive_names_block: bool = _opt(True, "an inactive class still holds its name", RULES)
    parent_fault_code: int = _opt(
        2500, "fault for a missing or inactive ParentRef (2500 or 610)", RULES
    )
    depth_fault_code: int = _opt(6000, "fault for a sub-class deeper than max-depth", RULES)
    deactivate_parent: str = _opt(
        "cascade",
        "deactivating a class with active sub-classes",
        RULES,
        ("cascade", "reject", "allow"),
    )
    rename_touches_sub_classes: bool = _opt(
        False,
        "renaming or moving a class also bumps SyncToken and LastUpdatedTime of its sub-classes "
        "(whose FullyQualifiedName changed), so CDC and webhooks report them too",
        RULES,
    )
    allow_reactivation: bool = _opt(
        True, "allow Active=true on an inactive class (else fault 6000, as reported in 2014)", RULES
    )
    sparse_deactivate_ignored: bool = _opt(
        False, "emulate the 2014 report: sparse Active=false answers 200 but changes nothing", RULES
    )
    query_active_only_default: bool = _opt(
        True, "queries without an Active condition return active classes only", RULES
    )
    batch_items_see_earlier: bool = _opt(
        False, "batch items may reference classes created earlier in the same batch", RULES
    )
    requestid_max_length: int = _opt(50, "longest requestid accepted", RULES)
    batch_requestid_max_length: int = _opt(36, "longest requestid accepted on /batch", RULES)
    requestid_retention: float = _opt(
        0.0, "seconds a requestid is remembered (0: until reset)", RULES
    )
    requestid_conflict: str = _opt(
        "replay",
        "same requestid with a different body: replay the original, or fault 6000",
        RULES,
        ("replay", "fault"),
    )

    # --- limits
    limits_enabled: bool = _opt(True, "master switch for every limit below", LIMITS)
    max_in_flight: int = _opt(10, "requests handled at once per realm", LIMITS)
    requests_per_minute: int = _opt(500, "requests per realm per rate window", LIMITS)
    requests_per_second: int = _opt(
        0, "requests per realm per second (QBO: 10; off by default)", LIMITS
    )
    batch_requests_per_minute: int = _opt(40, "batch requests per realm per rate window", LIMITS)
    max_batch_items: int = _opt(30, "items in one batch request", LIMITS)
    batch_oversize: str = _opt(
        "throttle",
        "a batch over max-batch-items: 429 ThrottleExceeded, or a 400 ValidationFault",
        LIMITS,
        ("throttle", "fault"),
    )
    rate_window: float = _opt(60.0, "length of the per-minute windows, in seconds", LIMITS)
    throttle_body: str = _opt(
        "xml", "body of a 429 (QBO has been reported to send XML)", LIMITS, ("xml", "json")
    )
    retry_after: int = _opt(0, "Retry-After seconds on a 429 (0: no header)", LIMITS)
    cdc_lookback_seconds: float = _opt(
        2592000.0, "oldest changedSince CDC accepts, in seconds before now (30 days)", LIMITS
    )
    cdc_max_objects: int = _opt(1000, "objects in one CDC answer (the oldest changes)", LIMITS)

    # --- faults
    latency_ms: float = _opt(0.0, "added latency per API request (mean)", FAULTS)
    latency_distribution: str = _opt(
        "fixed",
        "how latency varies around latency-ms by latency-jitter-ms",
        FAULTS,
        ("fixed", "uniform", "normal", "exponential"),
    )
    latency_jitter_ms: float = _opt(0.0, "spread of the latency (uniform: +-, normal: sd)", FAULTS)
    error_rate: float = _opt(0.0, "fraction of API requests answered with a 5xx", FAULTS)
    error_statuses: tuple[int, ...] = _opt(
        (500, 503), "statuses used for injected errors, comma-separated", FAULTS
    )
    error_body: str = _opt(
        "html", "body of injected 5xx answers", FAULTS, ("html", "json", "text", "empty")
    )
    drop_rate: float = _opt(0.0, "fraction of API requests whose connection is dropped", FAULTS)
    drop_mode: str = _opt(
        "after",
        "drop before handling the request, or after applying it (the write happened)",
        FAULTS,
        ("before", "after"),
    )
    throttle_seconds: float = _opt(0.0, "answer 429 to every API request for this long", FAULTS)
    outage_seconds: float = _opt(0.0, "full outage for this long (API and token endpoint)", FAULTS)
    outage_mode: str = _opt("503", "what an outage looks like", FAULTS, ("503", "500", "drop"))
    fault_target: str = _opt(
        "all", "which API requests faults hit", FAULTS, ("all", "writes", "reads")
    )
    fault_realms: tuple[str, ...] = _opt(
        (), "realms faults apply to, comma-separated (empty: all)", FAULTS
    )
    webhook_fail: bool = _opt(
        False, "every webhook delivery attempt fails, as if the endpoint were down", FAULTS
    )
    webhook_duplicate_deliveries: bool = _opt(
        False, "send every webhook delivery twice (same body, same event ids)", FAULTS
    )

    # --- webhooks
    webhook_url: str = _opt("", "URL that receives webhook deliveries (default: none)", WEBHOOKS)
    webhook_verifier_token: str = _opt(
        "", "the app's verifier token: HMAC-SHA256 key of the intuit-signature header", WEBHOOKS
    )
    webhook_format: str = _opt(
        "cloudevents",
        "payload: a CloudEvents array, or the older eventNotifications object",
        WEBHOOKS,
        ("cloudevents", "legacy"),
    )
    webhook_batch_ms: float = _opt(
        100.0, "changes within this window go out in one delivery", WEBHOOKS
    )
    webhook_retries: int = _opt(3, "retries of a failed delivery before it is dropped", WEBHOOKS)
    webhook_retry_backoff_ms: float = _opt(
        200.0, "wait before the first retry; doubles on each further retry", WEBHOOKS
    )
    webhook_timeout: float = _opt(5.0, "seconds to wait for the receiver's answer", WEBHOOKS)

    def to_dict(self, *, redact: bool = True) -> dict[str, Any]:
        """Plain JSON-able dict; secrets masked unless ``redact`` is False."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key in ("error_statuses", "fault_realms"):
            data[key] = list(data[key])
        if redact:
            for key in ("client_secret", "dev_refresh_token", "webhook_verifier_token"):
                data[key] = "***" if data[key] else ""
        return data

    def __repr__(self) -> str:
        # Keep the client secret and the standing token out of logs and tracebacks.
        return f"SandboxConfig(host={self.host!r}, port={self.port!r})"


def option_fields(group: str | None = None) -> list[dataclasses.Field[Any]]:
    """The dataclass fields of SandboxConfig, optionally only one group's."""
    return [
        f
        for f in dataclasses.fields(SandboxConfig)
        if group is None or f.metadata["group"] == group
    ]


FAULT_FIELDS = frozenset(f.name for f in option_fields(FAULTS))


def coerce(name: str, value: Any) -> Any:
    """Convert ``value`` (from JSON, argv or the environment) to the type of option ``name``.

    Raises ValueError with a readable message when the option is unknown or the value unfit.
    """
    fields = {f.name: f for f in dataclasses.fields(SandboxConfig)}
    if name not in fields:
        raise ValueError(f"unknown sandbox option {name!r}")
    default = fields[name].default
    choices = fields[name].metadata["choices"]
    result: Any
    if isinstance(default, bool):
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                raise ValueError(f"{name}: expected a boolean, got {value!r}")
            result = lowered in {"1", "true", "yes", "on"}
        else:
            result = bool(value)
    elif isinstance(default, tuple):
        items = value.split(",") if isinstance(value, str) else list(value)
        items = [str(item).strip() for item in items if str(item).strip()]
        result = tuple(int(item) for item in items) if name == "error_statuses" else tuple(items)
    elif isinstance(default, int):
        result = int(value)
    elif isinstance(default, float):
        result = float(value)
    else:
        result = str(value)
    if choices and str(result) not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(choices)}, got {result!r}")
    if isinstance(result, int | float) and not isinstance(result, bool) and result < -1:
        raise ValueError(f"{name}: negative values are not accepted")
    return result


def updated(config: SandboxConfig, changes: dict[str, Any]) -> SandboxConfig:
    """A copy of ``config`` with ``changes`` applied after coercion (ValueError if invalid)."""
    clean = {name: coerce(name, value) for name, value in changes.items()}
    return dataclasses.replace(config, **clean)


def fault_defaults() -> dict[str, Any]:
    """The fault options at their defaults, i.e. no faults at all."""
    return {f.name: f.default for f in option_fields(FAULTS)}
