"""QBO OAuth tokens per realm in "ClasssyncRealm": row-locked refresh, optional Fernet encryption."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from classsync.domain import RealmTokens
from classsync.store.models import QboRealm

CONNECTED = "CONNECTED"
DISCONNECTED = "DISCONNECTED"
_ENCRYPTED_PREFIX = "fernet:"


class TokenCipher:
    """Encrypts token values at rest when keys are configured.

    ``keys`` is newest first; every key can decrypt, only the first encrypts, so rotating means
    putting a new key in front (cryptography's MultiFernet). Without keys values are stored as is.
    """

    def __init__(self, keys: Sequence[str] = ()) -> None:
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys]) if keys else None

    def encrypt(self, value: str | None) -> str | None:
        """Value as stored."""
        if value is None or self._fernet is None:
            return value
        return _ENCRYPTED_PREFIX + self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, stored: str | None) -> str | None:
        """Value as used."""
        if stored is None or not stored.startswith(_ENCRYPTED_PREFIX):
            return stored
        if self._fernet is None:
            msg = "stored QBO tokens are encrypted but TOKEN_ENCRYPTION_KEY is not set"
            raise RuntimeError(msg)
        try:
            return self._fernet.decrypt(stored[len(_ENCRYPTED_PREFIX) :].encode()).decode()
        except InvalidToken:
            msg = "stored QBO tokens cannot be decrypted with TOKEN_ENCRYPTION_KEY"
            raise RuntimeError(msg) from None

    def rotate(self, stored: str | None) -> str | None:
        """Re-encrypt with the newest key."""
        return self.encrypt(self.decrypt(stored))


def _naive_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


class _LockedRealm:
    """A realm row held under a row lock for the duration of one refresh."""

    def __init__(self, session: Session, row: QboRealm, cipher: TokenCipher) -> None:
        self._session = session
        self._row = row
        self._cipher = cipher
        self.tokens = _to_tokens(row, cipher)

    def save(self, tokens: RealmTokens) -> None:
        row = self._row
        row.access_token = self._cipher.encrypt(tokens.access_token)
        row.refresh_token = self._cipher.encrypt(tokens.refresh_token)
        row.access_token_expires_at = _naive_utc(tokens.access_expires_at)
        row.refresh_token_expires_at = _naive_utc(tokens.refresh_expires_at)
        row.status = CONNECTED
        row.status_message = None
        row.updated_at = datetime.now(UTC).replace(tzinfo=None)
        self.tokens = tokens

    def mark_disconnected(self, message: str) -> None:
        self._row.status = DISCONNECTED
        self._row.status_message = message
        self._row.updated_at = datetime.now(UTC).replace(tzinfo=None)


def _to_tokens(row: QboRealm, cipher: TokenCipher) -> RealmTokens | None:
    refresh = cipher.decrypt(row.refresh_token)
    if not refresh:
        return None
    return RealmTokens(
        realm_id=row.realm_id,
        refresh_token=refresh,
        access_token=cipher.decrypt(row.access_token),
        access_expires_at=_aware(row.access_token_expires_at),
        refresh_expires_at=_aware(row.refresh_token_expires_at),
    )


class SqlAlchemyTokenStore:
    """TokenStore (classsync.qbo.token_storage) on the database, shared by every replica."""

    def __init__(self, session_factory: sessionmaker[Session], cipher: TokenCipher) -> None:
        self._session_factory = session_factory
        self._cipher = cipher

    def load(self, realm_id: str) -> RealmTokens | None:
        """Tokens as last saved, or None."""
        with self._session_factory() as session:
            row = session.get(QboRealm, realm_id)
            return None if row is None else _to_tokens(row, self._cipher)

    def status(self, realm_id: str) -> tuple[str, str | None] | None:
        """(status, message) of the realm, or None when it was never connected."""
        with self._session_factory() as session:
            row = session.get(QboRealm, realm_id)
            return None if row is None else (row.status, row.status_message)

    def is_connected(self, realm_id: str) -> bool:
        """True when the realm has a refresh token stored and is not marked DISCONNECTED."""
        with self._session_factory() as session:
            row = session.get(QboRealm, realm_id)
            return row is not None and row.status == CONNECTED and bool(row.refresh_token)

    def connected_realms(self) -> list[str]:
        """Every realm with a refresh token stored that QBO has not refused, in id order."""
        with self._session_factory() as session:
            query = (
                select(QboRealm.realm_id)
                .where(QboRealm.status == CONNECTED, QboRealm.refresh_token.is_not(None))
                .order_by(QboRealm.realm_id)
            )
            return list(session.scalars(query))

    @contextmanager
    def locked(self, realm_id: str) -> Iterator[_LockedRealm]:
        """Hold the realm's row lock (SELECT … FOR UPDATE) until the block ends, then commit.

        The commit happens before control returns to the caller, so a rotated refresh token is
        durable before the new access token is used (docs/qbo.md, "OAuth tokens").
        """
        self._ensure_row(realm_id)
        with self._session_factory() as session, session.begin():
            row = session.scalars(
                select(QboRealm).where(QboRealm.realm_id == realm_id).with_for_update()
            ).one()
            yield _LockedRealm(session, row, self._cipher)

    def _ensure_row(self, realm_id: str) -> None:
        with self._session_factory() as session:
            if session.get(QboRealm, realm_id) is not None:
                return
            now = datetime.now(UTC).replace(tzinfo=None)
            session.add(
                QboRealm(realm_id=realm_id, status=CONNECTED, created_at=now, updated_at=now)
            )
            try:
                session.commit()
            except IntegrityError:  # another replica created it first
                session.rollback()

    def forget(self, realm_id: str, message: str) -> bool:
        """Drop the realm's tokens and mark it DISCONNECTED with ``message``; False if unknown.

        The realm's Classes and jobs stay; its jobs wait (not counted) until it is connected again.
        """
        with self._session_factory() as session, session.begin():
            row = session.scalars(
                select(QboRealm).where(QboRealm.realm_id == realm_id).with_for_update()
            ).one_or_none()
            if row is None:
                return False
            row.access_token = row.refresh_token = None
            row.access_token_expires_at = row.refresh_token_expires_at = None
            row.status = DISCONNECTED
            row.status_message = message
            row.updated_at = datetime.now(UTC).replace(tzinfo=None)
            return True

    def rotate_encryption(self) -> int:
        """Re-encrypt every stored token with the newest key; returns rows rewritten."""
        with self._session_factory() as session, session.begin():
            rows = list(session.scalars(select(QboRealm).with_for_update()))
            for row in rows:
                row.access_token = self._cipher.rotate(row.access_token)
                row.refresh_token = self._cipher.rotate(row.refresh_token)
            return len(rows)
