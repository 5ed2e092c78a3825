"""Unit of work: one database transaction with the repositories bound to it."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.orm import Session, sessionmaker

from classsync.store.class_rows import ClassRepository
from classsync.store.job_queue import JobQueue


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
            self._session.rollback()
        finally:
            self._session.close()

    def commit(self) -> None:
        """Make the work durable."""
        self._session.commit()

    def rollback(self) -> None:
        """Drop the work."""
        self._session.rollback()
