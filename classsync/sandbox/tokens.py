"""OAuth 2.0 token bookkeeping: codes, access and refresh tokens, rotation, grace, revocation."""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

from classsync.sandbox.config import SandboxConfig

_PURGE_EVERY = 1000  # issue() calls between sweeps of expired tokens


class InvalidGrantError(Exception):
    """The code or refresh token is unknown, used up, superseded, expired or revoked."""


class AccessDeniedError(Exception):
    """The bearer token cannot be used; ``detail`` goes in the 401 body (no token value)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(slots=True)
class AccessToken:
    """Where an access token may be used and until when. The token value is the dict key."""

    realm_id: str
    grant_id: str
    expires_at: float


@dataclass(slots=True)
class RefreshToken:
    """A refresh token's realm, grant (connection) and life."""

    realm_id: str
    grant_id: str
    expires_at: float
    superseded_at: float | None = None
    standing: bool = False


@dataclass(slots=True)
class AuthCode:
    """A one-time authorization code from the authorize endpoint."""

    realm_id: str
    expires_at: float


def _new_token(prefix: str) -> str:
    return f"{prefix}{secrets.token_urlsafe(32)}"


class TokenAuthority:
    """All token state of the sandbox. Runs on the event loop only, so no locks."""

    def __init__(self) -> None:
        self.access: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.codes: dict[str, AuthCode] = {}
        self._issued = 0

    def __repr__(self) -> str:
        return f"TokenAuthority(access={len(self.access)}, refresh={len(self.refresh_tokens)})"

    # ----------------------------------------------------------------------------- issuing

    def issue(
        self, realm_id: str, config: SandboxConfig, *, grant_id: str | None = None
    ) -> dict[str, Any]:
        """Mint an access and a refresh token for ``realm_id``; returns the token response."""
        now = time.time()
        grant = grant_id or secrets.token_hex(8)
        access = _new_token("sbx-at-")
        refresh = _new_token("sbx-rt-")
        self.access[access] = AccessToken(realm_id, grant, now + config.access_token_ttl)
        self.refresh_tokens[refresh] = RefreshToken(realm_id, grant, now + config.refresh_token_ttl)
        self._issued += 1
        if self._issued % _PURGE_EVERY == 0:
            self.purge(config)
        return self._response(access, refresh, config, now)

    def _response(
        self, access: str, refresh: str, config: SandboxConfig, now: float
    ) -> dict[str, Any]:
        # Field names of Intuit's token response (docs/qbo.md, "OAuth tokens").
        return {
            "token_type": "bearer",
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": int(config.access_token_ttl),
            "x_refresh_token_expires_in": int(self.refresh_tokens[refresh].expires_at - now),
        }

    def install_standing(self, realm_id: str, token: str, config: SandboxConfig) -> None:
        """Register the dev realm's standing refresh token (survives its own use)."""
        if token:
            self.refresh_tokens[token] = RefreshToken(
                realm_id, "standing", time.time() + config.refresh_token_ttl, standing=True
            )

    def new_code(self, realm_id: str, config: SandboxConfig) -> str:
        """A one-time authorization code for ``realm_id``."""
        code = _new_token("sbx-code-")
        self.codes[code] = AuthCode(realm_id, time.time() + config.auth_code_ttl)
        return code

    def exchange_code(self, code: str, config: SandboxConfig) -> tuple[str, dict[str, Any]]:
        """authorization_code grant: (realm_id, token response). A code works once."""
        entry = self.codes.pop(code, None)
        if entry is None or entry.expires_at < time.time():
            raise InvalidGrantError("unknown, used or expired authorization code")
        return entry.realm_id, self.issue(entry.realm_id, config)

    def refresh(self, token: str, config: SandboxConfig) -> tuple[str, dict[str, Any]]:
        """refresh_token grant: (realm_id, token response), rotating the refresh token."""
        now = time.time()
        entry = self.refresh_tokens.get(token)
        if entry is None or entry.expires_at < now:
            raise InvalidGrantError("unknown, revoked or expired refresh token")
        if (
            entry.superseded_at is not None
            and now > entry.superseded_at + config.refresh_token_grace
        ):
            raise InvalidGrantError("superseded refresh token")
        grant = "dev" if entry.standing else entry.grant_id
        if not config.rotate_refresh_tokens and not entry.standing:
            # A refresh token's life rolls on with each use (docs/qbo.md, "OAuth tokens").
            entry.expires_at = now + config.refresh_token_ttl
            access = _new_token("sbx-at-")
            self.access[access] = AccessToken(entry.realm_id, grant, now + config.access_token_ttl)
            return entry.realm_id, self._response(access, token, config, now)
        if not entry.standing and entry.superseded_at is None:
            entry.superseded_at = now
        return entry.realm_id, self.issue(entry.realm_id, config, grant_id=grant)

    # ----------------------------------------------------------------------------- checking

    def check_access(self, token: str) -> str:
        """The realm a bearer token may act on, or AccessDeniedError."""
        entry = self.access.get(token)
        if entry is None:
            raise AccessDeniedError("Malformed bearer token or token not recognised")
        if entry.expires_at <= time.time():
            raise AccessDeniedError("Token expired")
        return entry.realm_id

    # ----------------------------------------------------------------------------- ending

    def revoke(self, token: str) -> bool:
        """Revoke the connection (grant) a token belongs to; False if the token is unknown."""
        entry: AccessToken | RefreshToken | None = self.refresh_tokens.get(
            token
        ) or self.access.get(token)
        if entry is None:
            return False
        if isinstance(entry, RefreshToken) and entry.standing:
            del self.refresh_tokens[token]
            return True
        self._drop(lambda item: item.grant_id == entry.grant_id and item.realm_id == entry.realm_id)
        return True

    def revoke_realm(self, realm_id: str) -> int:
        """Revoke every token of a realm (standing token included); returns how many."""
        return self._drop(lambda item: item.realm_id == realm_id)

    def expire_access(self, realm_id: str) -> int:
        """Make every access token of a realm expired now; returns how many."""
        now = time.time()
        count = 0
        for entry in self.access.values():
            if entry.realm_id == realm_id and entry.expires_at > now:
                entry.expires_at = now
                count += 1
        return count

    def _drop(self, predicate: Any) -> int:
        before = len(self.access) + len(self.refresh_tokens)
        self.access = {k: v for k, v in self.access.items() if not predicate(v)}
        self.refresh_tokens = {k: v for k, v in self.refresh_tokens.items() if not predicate(v)}
        return before - len(self.access) - len(self.refresh_tokens)

    def purge(self, config: SandboxConfig) -> None:
        """Forget tokens that can never work again (bounds memory in long benchmarks)."""
        now = time.time()
        self.access = {k: v for k, v in self.access.items() if v.expires_at > now - 60}
        self.refresh_tokens = {
            k: v
            for k, v in self.refresh_tokens.items()
            if v.expires_at > now
            and (v.superseded_at is None or v.superseded_at + config.refresh_token_grace > now)
        }
        self.codes = {k: v for k, v in self.codes.items() if v.expires_at > now}

    # ----------------------------------------------------------------------------- state file

    def to_state(self) -> dict[str, Any]:
        """JSON-able snapshot (the state file is a development artefact; it holds tokens)."""
        return {
            "access": {k: asdict(v) for k, v in self.access.items()},
            "refresh": {k: asdict(v) for k, v in self.refresh_tokens.items() if not v.standing},
        }

    def load_state(self, data: dict[str, Any]) -> None:
        """Restore tokens saved by ``to_state``."""
        self.access.update({k: AccessToken(**v) for k, v in data.get("access", {}).items()})
        self.refresh_tokens.update(
            {k: RefreshToken(**v) for k, v in data.get("refresh", {}).items()}
        )
