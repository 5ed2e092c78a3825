"""SandboxAdmin: a small requests-based client of the /_sandbox/ admin HTTP API."""

from __future__ import annotations

from typing import Any

import requests

_TIMEOUT = 10.0


class SandboxAdminError(RuntimeError):
    """The admin API refused a call (unknown option, unknown realm, ...)."""


class SandboxAdmin:
    """Drive a running sandbox from tests, benchmarks and scripts.

    Every method is one HTTP call to ``<base_url>/_sandbox/...``; see classsync/sandbox/README.md.
    """

    def __init__(self, base_url: str, *, timeout: float = _TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._http = requests.Session()

    def __repr__(self) -> str:
        return f"SandboxAdmin(base_url={self.base_url!r})"

    def close(self) -> None:
        """Close the pooled HTTP connections."""
        self._http.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._http.request(
            method, f"{self.base_url}/_sandbox{path}", json=body, timeout=self._timeout
        )
        if response.status_code >= 400:
            raise SandboxAdminError(
                f"{method} /_sandbox{path}: {response.status_code} {response.text}"
            )
        return response.json()

    # ----------------------------------------------------------------------------- whole server

    def health(self) -> bool:
        """True when the server answers."""
        return bool(self._call("GET", "/health").get("ok"))

    def reset(self) -> None:
        """Back to a just-started server: startup options, only the dev realm, zero counters."""
        self._call("POST", "/reset")

    def config(self) -> dict[str, Any]:
        """Every option in force (client secret and standing token masked)."""
        return dict(self._call("GET", "/config"))

    def update_config(self, **options: Any) -> dict[str, Any]:
        """Change runtime options (limits, rules, token lifetimes, faults); returns all options."""
        return dict(self._call("PATCH", "/config", options))

    def counters(self) -> dict[str, Any]:
        """Requests by endpoint and status, 429s, duplicates prevented, per-realm detail."""
        return dict(self._call("GET", "/counters"))

    def reset_counters(self) -> None:
        """Zero every counter and every limit window."""
        self._call("DELETE", "/counters")

    # ----------------------------------------------------------------------------- faults

    def faults(self) -> dict[str, Any]:
        """The fault options in force and the seconds left in open windows."""
        return dict(self._call("GET", "/faults"))

    def set_faults(self, **options: Any) -> dict[str, Any]:
        """Set fault options, e.g. ``set_faults(latency_ms=200, error_rate=0.1)``.

        Windows start now: ``outage_seconds=5`` means an outage for the next five seconds.
        """
        return dict(self._call("PUT", "/faults", options))

    def clear_faults(self) -> dict[str, Any]:
        """Turn every injected fault off."""
        return dict(self._call("DELETE", "/faults"))

    # ----------------------------------------------------------------------------- realms

    def realms(self) -> list[dict[str, Any]]:
        """Every realm with its number of classes."""
        return list(self._call("GET", "/realms"))

    def create_realm(self, realm_id: str | None = None) -> dict[str, Any]:
        """A realm (new unless ``realm_id`` exists) with fresh tokens.

        Returns realm_id, access_token, refresh_token, expires_in, x_refresh_token_expires_in.
        """
        return dict(self._call("POST", "/realms", {"realm_id": realm_id} if realm_id else {}))

    def issue_tokens(self, realm_id: str) -> dict[str, Any]:
        """A fresh access/refresh token pair for an existing realm."""
        return dict(self._call("POST", f"/realms/{realm_id}/tokens"))

    def classes(self, realm_id: str) -> list[dict[str, Any]]:
        """Every class of the realm, inactive ones included, in QBO's JSON shape."""
        return list(self._call("GET", f"/realms/{realm_id}/classes"))

    def revoke_tokens(self, realm_id: str) -> int:
        """Every token of the realm stops working (invalid_grant / 401); returns how many."""
        return int(self._call("POST", f"/realms/{realm_id}/revoke-tokens")["revoked"])

    def expire_access_tokens(self, realm_id: str) -> int:
        """Every access token of the realm expires now (next API call: 401); returns how many."""
        return int(self._call("POST", f"/realms/{realm_id}/expire-access-tokens")["expired"])

    # ----------------------------------------------------------------------------- the accountant
    # Changes made in QBO itself, not through the API: same rules, SyncToken bump and webhook.
    # A refusal raises SandboxAdminError carrying QBO's Fault body (e.g. code 6240).

    def get_class(self, realm_id: str, class_id: str) -> dict[str, Any]:
        """One class, inactive or not, in QBO's JSON shape."""
        return dict(self._call("GET", f"/realms/{realm_id}/classes/{class_id}"))

    def create_class(
        self, realm_id: str, name: str, *, parent_id: str | None = None, active: bool = True
    ) -> dict[str, Any]:
        """Create a class as an accountant would in QBO; returns it in QBO's JSON shape."""
        body: dict[str, Any] = {"Name": name, "Active": active}
        if parent_id is not None:
            body["ParentRef"] = {"value": parent_id}
        return dict(self._call("POST", f"/realms/{realm_id}/classes", body))

    def change_class(self, realm_id: str, class_id: str, **fields: Any) -> dict[str, Any]:
        """Edit Name, Active and/or ParentRef (None: top level) as an accountant would in QBO."""
        return dict(self._call("PATCH", f"/realms/{realm_id}/classes/{class_id}", fields))

    def rename_class(self, realm_id: str, class_id: str, name: str) -> dict[str, Any]:
        """Rename a class in QBO itself."""
        return self.change_class(realm_id, class_id, Name=name)

    def set_class_active(self, realm_id: str, class_id: str, active: bool) -> dict[str, Any]:
        """Deactivate (False) or reactivate (True) a class in QBO itself."""
        return self.change_class(realm_id, class_id, Active=active)

    def move_class(self, realm_id: str, class_id: str, parent_id: str | None) -> dict[str, Any]:
        """Put a class under ``parent_id``, or at the top level with None, in QBO itself."""
        parent = None if parent_id is None else {"value": parent_id}
        return self.change_class(realm_id, class_id, ParentRef=parent)
