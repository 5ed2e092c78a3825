"""All state of one sandbox: options, realms, tokens, limits, fault windows, counters, file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from classsync.sandbox.config import STARTUP_ONLY, SandboxConfig, fault_defaults, updated
from classsync.sandbox.limits import Limiter
from classsync.sandbox.realm import ClassRecord, Realm
from classsync.sandbox.tokens import TokenAuthority
from classsync.sandbox.webhooks import CREATED, UPDATED, WebhookSender

_SAVE_DELAY = 0.2  # seconds: coalesce bursts of writes into one state-file save
_STATE_VERSION = 1
_WEBHOOK_COUNTERS = (
    "webhooks_sent",
    "webhooks_failed",
    "webhook_retries",
    "webhook_events_sent",
    "webhook_events_failed",
)


class Counters:
    """What happened, for tests and benchmarks: requests by endpoint/status, 429s, replays."""

    def __init__(self) -> None:
        self.requests: defaultdict[str, defaultdict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )
        self.realms: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.injected: defaultdict[str, int] = defaultdict(int)
        self.token_grants: defaultdict[str, int] = defaultdict(int)
        self.webhooks: defaultdict[str, int] = defaultdict(int)
        self.throttled = 0
        self.duplicates_prevented = 0
        self.started = time.time()

    def request(self, endpoint: str, status: int | str, realm_id: str | None) -> None:
        """Count one answered (or dropped) request."""
        self.requests[endpoint][str(status)] += 1
        if realm_id is not None:
            self.realms[realm_id]["requests"] += 1
        if str(status) == "429":
            self.throttled += 1
            if realm_id is not None:
                self.realms[realm_id]["throttled"] += 1

    def realm(self, realm_id: str, name: str, amount: int = 1) -> None:
        """Add to a per-realm counter (classes_created, duplicates_prevented, ...)."""
        self.realms[realm_id][name] += amount

    def webhook(self, name: str, amount: int) -> None:
        """Add to a webhook counter (webhooks_sent, webhooks_failed, ...)."""
        self.webhooks[name] += amount

    def snapshot(self, limiter: Limiter) -> dict[str, Any]:
        """JSON-able copy; totals plus per-realm detail."""
        realms: dict[str, dict[str, int]] = {}
        for realm_id, values in self.realms.items():
            entry = {
                "requests": 0,
                "classes_created": 0,
                "duplicates_prevented": 0,
                "throttled": 0,
                "token_refreshes": 0,
            }
            entry.update(values)
            entry["max_in_flight"] = limiter.peak(realm_id)
            entry["in_flight"] = limiter.in_flight(realm_id)
            realms[realm_id] = entry
        return {
            "requests": {name: dict(statuses) for name, statuses in self.requests.items()},
            "requests_total": sum(sum(s.values()) for s in self.requests.values()),
            "throttled": self.throttled,
            "duplicates_prevented": self.duplicates_prevented,
            "classes_created": sum(r.get("classes_created", 0) for r in self.realms.values()),
            "injected": dict(self.injected),
            "token_grants": dict(self.token_grants),
            **{name: self.webhooks.get(name, 0) for name in _WEBHOOK_COUNTERS},
            "realms": realms,
            "uptime_seconds": round(time.time() - self.started, 3),
        }


class SandboxState:
    """The whole mutable world of one sandbox server. Touched only from its event loop."""

    def __init__(self, config: SandboxConfig) -> None:
        self.startup_config = config
        self.config = config
        self.realms: dict[str, Realm] = {}
        self.tokens = TokenAuthority()
        self.limiter = Limiter()
        self.counters = Counters()
        self.rng = random.Random(None if config.seed < 0 else config.seed)
        self.outage_until = 0.0
        self.throttle_until = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._save_handle: asyncio.TimerHandle | None = None
        # Counters are replaced on reset, so the sender looks them up on every use.
        self.webhooks = WebhookSender(
            lambda: self.config, lambda name, amount: self.counters.webhook(name, amount)
        )
        self._arm_windows(config, config.to_dict(redact=False))
        if config.state_file and Path(config.state_file).exists():
            self._load(Path(config.state_file))
        self._bootstrap_dev_realm()

    # ----------------------------------------------------------------------------- realms

    def realm(self, realm_id: str) -> Realm:
        """The realm with this id, created on first use."""
        found = self.realms.get(realm_id)
        if found is None:
            found = self.realms[realm_id] = Realm(realm_id)
            self.mark_dirty()
        return found

    def class_changed(self, realm: Realm, record: ClassRecord, *, created: bool = False) -> None:
        """A Class was created or changed (API or admin): persist soon and send a webhook."""
        self.mark_dirty()
        self.webhooks.publish(
            realm.realm_id, record.id, CREATED if created else UPDATED, record.updated
        )

    def new_realm_id(self) -> str:
        """A fresh realm id in QBO's style (a long number)."""
        while True:
            candidate = str(
                self.rng.randrange(9_130_350_000_000_000_100, 9_130_359_999_999_999_999)
            )
            if candidate not in self.realms:
                return candidate

    def _bootstrap_dev_realm(self) -> None:
        self.realm(self.config.dev_realm_id)
        self.tokens.install_standing(
            self.config.dev_realm_id, self.config.dev_refresh_token, self.config
        )

    # ----------------------------------------------------------------------------- settings

    def apply(self, changes: dict[str, Any]) -> SandboxConfig:
        """Change options at runtime (ValueError if one is unknown, startup-only or invalid)."""
        fixed = sorted(set(changes) & STARTUP_ONLY)
        if fixed:
            raise ValueError(f"only settable at start: {', '.join(fixed)}")
        new = updated(self.config, changes)
        self.config = new
        if "seed" in changes and new.seed >= 0:
            self.rng.seed(new.seed)
        self._arm_windows(new, changes)
        return new

    def clear_faults(self) -> SandboxConfig:
        """Turn every injected fault off (limits and rules stay as they are)."""
        return self.apply(fault_defaults())

    def _arm_windows(self, config: SandboxConfig, changes: dict[str, Any]) -> None:
        # A window option means "from now on, for this many seconds".
        now = time.monotonic()
        if "outage_seconds" in changes:
            self.outage_until = now + config.outage_seconds if config.outage_seconds > 0 else 0.0
        if "throttle_seconds" in changes:
            self.throttle_until = (
                now + config.throttle_seconds if config.throttle_seconds > 0 else 0.0
            )

    def windows(self) -> dict[str, float]:
        """Seconds left in the outage and forced-429 windows."""
        now = time.monotonic()
        return {
            "outage_remaining": round(max(0.0, self.outage_until - now), 3),
            "throttle_remaining": round(max(0.0, self.throttle_until - now), 3),
        }

    def reset(self) -> None:
        """Back to a just-started server: startup options, dev realm only, zero counters."""
        self.config = self.startup_config
        self.realms = {}
        self.tokens = TokenAuthority()
        self.limiter.reset()
        self.counters = Counters()
        self.rng.seed(None if self.config.seed < 0 else self.config.seed)
        self.outage_until = self.throttle_until = 0.0
        self._arm_windows(self.config, self.config.to_dict(redact=False))
        self._bootstrap_dev_realm()
        self.mark_dirty()

    # ----------------------------------------------------------------------------- state file

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the serving loop so writes can schedule a state-file save and webhooks."""
        self._loop = loop
        self.webhooks.attach(loop)

    def mark_dirty(self) -> None:
        """Something worth persisting changed; save soon (coalesced)."""
        if not self.config.state_file or self._loop is None or self._save_handle is not None:
            return
        self._save_handle = self._loop.call_later(_SAVE_DELAY, self._save_now)

    def _save_now(self) -> None:
        self._save_handle = None
        self.save()

    def save(self) -> None:
        """Write the state file atomically (temp file + rename)."""
        if not self.config.state_file:
            return
        path = Path(self.config.state_file)
        data = {
            "version": _STATE_VERSION,
            "realms": [realm.to_state() for realm in self.realms.values()],
            "tokens": self.tokens.to_state(),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(data, stream)
            os.chmod(temp, 0o600)  # it holds tokens
            os.replace(temp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    def _load(self, path: Path) -> None:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != _STATE_VERSION:
            raise ValueError(f"{path}: unsupported sandbox state version {data.get('version')!r}")
        for item in data.get("realms", []):
            realm = Realm.from_state(item)
            self.realms[realm.realm_id] = realm
        self.tokens.load_state(data.get("tokens", {}))
