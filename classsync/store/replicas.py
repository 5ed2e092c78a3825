"""The replica registry ("ClasssyncReplica"): which `classsync serve` processes are alive."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from classsync.store.models import Replica
from classsync.sync.ports import ReplicaSeat


class ReplicaRegistry:
    """Heartbeats of live processes; a process silent for longer than ``ttl`` counts as gone."""

    def __init__(self, session_factory: sessionmaker[Session], ttl: timedelta) -> None:
        self._session_factory = session_factory
        self._ttl = ttl

    def heartbeat(self, replica_id: str, now: datetime) -> ReplicaSeat:
        """Record that ``replica_id`` is alive; returns how many are alive and its rank among them.

        Ranks follow start order (then id), so a replica joining never moves the ones before it.
        """
        with self._session_factory() as session:
            touched = session.execute(
                update(Replica).where(Replica.replica_id == replica_id).values(heartbeat_at=now)
            )
            if not touched.rowcount:  # type: ignore[attr-defined]
                session.add(Replica(replica_id=replica_id, heartbeat_at=now, started_at=now))
            try:
                session.commit()
            except IntegrityError:  # pragma: no cover - the same id twice is a programming error
                session.rollback()
            # Forget replicas that died long ago, so the table stays small.
            session.execute(delete(Replica).where(Replica.heartbeat_at < now - 10 * self._ttl))
            session.commit()
            alive = list(
                session.scalars(
                    select(Replica.replica_id)
                    .where(Replica.heartbeat_at >= now - self._ttl)
                    .order_by(Replica.started_at, Replica.replica_id)
                )
            )
            if replica_id not in alive:  # our own beat is older than the TTL by another clock
                alive.append(replica_id)
            return ReplicaSeat(replicas=len(alive), rank=alive.index(replica_id))

    def leave(self, replica_id: str) -> None:
        """Remove ``replica_id`` (graceful stop), so the others take over its share at once."""
        with self._session_factory() as session:
            session.execute(delete(Replica).where(Replica.replica_id == replica_id))
            session.commit()
