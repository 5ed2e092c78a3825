"""Read-only lookups of a realm's Classes by local id, QBO Id or full name (the read API's store)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from classsync.store.models import QBClass, SyncJob
from classsync.sync.ports import ClassView

# Bound the size of IN (...) lists; the read API caps a request at 1,000 keys in all.
_CHUNK = 500


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _canonical_uuids(ids: Iterable[str]) -> list[str]:
    # Ids are UUIDs in their canonical text form (models.new_id). Anything else names no row, and
    # PostgreSQL's native uuid column would refuse it as a parameter and fail the whole query.
    found = []
    for candidate in ids:
        try:
            if str(uuid.UUID(candidate)) == candidate:
                found.append(candidate)
        except ValueError:
            continue
    return found


class SqlAlchemyClassReader:
    """QBClass joined with its sync job; a realm's Classes are the rows of that realm.

    Each call uses a short session of its own: reads need no unit of work and hold no locks.
    """

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory

    def find(
        self,
        realm_id: str,
        ids: Sequence[str],
        qb_ids: Sequence[str],
        full_name_keys: Sequence[str],
    ) -> list[ClassView]:
        """The realm's Classes whose id, QBO Id, QBO-form full name or caller key is listed;
        each once.

        A full name is looked up in ``callerKey`` too: a Class renamed or moved in QBO is still
        found by the name its caller last sent (which of two rows answers is sync's choice).
        """
        # One statement per chunk: a name's two columns are asked together (one round trip).
        lookups: list[tuple[tuple[InstrumentedAttribute[Any], ...], list[str]]] = [
            ((QBClass.id,), _canonical_uuids(dict.fromkeys(ids))),
            ((QBClass.qb_id,), list(dict.fromkeys(qb_ids))),
            ((QBClass.full_name_key, QBClass.caller_key), list(dict.fromkeys(full_name_keys))),
        ]
        found: dict[str, ClassView] = {}
        with self._session_factory() as session:
            for columns, keys in lookups:
                for chunk in _chunks(keys):
                    query = _views(realm_id).where(or_(*(c.in_(chunk) for c in columns)))
                    for row in session.execute(query):
                        found.setdefault(row.class_id, ClassView(*row))
        return list(found.values())


def _views(realm_id: str) -> Select[Any]:
    return (
        select(
            QBClass.id.label("class_id"),
            QBClass.name,
            QBClass.full_name,
            QBClass.full_name_key,
            QBClass.qb_id,
            QBClass.version_token,
            SyncJob.status,
            SyncJob.generation,
            SyncJob.last_error_code,
            SyncJob.last_error_message,
            QBClass.caller_key,
        )
        .join(SyncJob, SyncJob.class_id == QBClass.id)
        .where(QBClass.realm_id == realm_id)
    )
