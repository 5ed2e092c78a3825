"""Unit of work: one database transaction with the repositories bound to it."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from classsync.store.class_rows import ClassRepository
from classsync.store.job_queue import JobQueue
from classsync.sync.ports import StoreConflict, StoreUnavailable


class SqlAlchemyUnitOfWork:
    """A Session-backed unit of work. Leaving the block without commit() rolls back."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory

    def __enter__(self) -> Self:
        self._session = self._session_factory()
        self.classes = ClassRepository(self._session)
        self.jobs = JobQueue(self._session)
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
