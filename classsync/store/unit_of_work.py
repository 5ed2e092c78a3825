"""Units of work: one database transaction with the stores bound to it, store-neutral errors."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from classsync.store.class_rows import ClassRepository
from classsync.store.inbox import WebhookInboxRepository
from classsync.store.job_queue import JobQueue
from classsync.store.remote_changes import RemoteChangeRepository
from classsync.sync.ports import StoreConflict, StoreUnavailable


class SessionUnitOfWork:
    """A session, stores bound to it, rollback on exit, SQLAlchemy errors translated.

    Leaving the block without commit() rolls back. Subclasses only say which stores they bind
    (``_bind``), so every unit of work hands the sync layer the same errors.
    """

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory

    def _bind(self, session: Session) -> None:
        """Bind this unit of work's stores to ``session``."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._session = self._session_factory()
        self._bind(self._session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            try:
                self._session.rollback()
            finally:
                self._session.close()
        except (IntegrityError, OperationalError) as cleanup_error:
            exc = exc or cleanup_error  # an error raised in the block is the one to report
        # The sync layer sees store-neutral errors (it never imports SQLAlchemy).
        if isinstance(exc, IntegrityError):
            raise StoreConflict(str(exc.orig)) from exc
        if isinstance(exc, OperationalError):
            raise StoreUnavailable(str(exc.orig)) from exc

    def commit(self) -> None:
        """Make the work durable."""
        self._session.commit()

    def rollback(self) -> None:
        """Drop the work."""
        self._session.rollback()


class SqlAlchemyUnitOfWork(SessionUnitOfWork):
    """``sync.ports.UnitOfWork``: one transaction over the Class rows and the job queue."""

    def _bind(self, session: Session) -> None:
        self.classes = ClassRepository(session)
        self.jobs = JobQueue(session)


class SqlAlchemyRemoteUnitOfWork(SessionUnitOfWork):
    """``sync.remote_ports.RemoteUnitOfWork``: one transaction over remote changes and the inbox."""

    def _bind(self, session: Session) -> None:
        self.changes = RemoteChangeRepository(session)
        self.inbox = WebhookInboxRepository(session)
