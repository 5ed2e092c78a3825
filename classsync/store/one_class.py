"""One new top-level Class stored in one statement, its own transaction: ingest's latency hot path.

A one-Class ClassRequest through the general path (``ClassRepository.save_batch``) costs BEGIN,
two look-ups, two INSERTs and COMMIT: six round trips, each a wait for a PostgreSQL backend on a
busy machine (docs/performance.md, "c. overhead"). When the Class is top-level, carries no QBO Id
and its realm holds no row under its key, ``plan_upsert`` would only insert the row and a job at
generation 1; this module does exactly that in one autocommitted statement, the look-ups as
``NOT EXISTS`` guards. Anything else (a match, a unique-key race, MySQL, SQLite) returns None and
the caller takes the general path.
"""

from __future__ import annotations

from datetime import datetime
from uuid import uuid4

from sqlalchemy import Engine, Table, TextClause, text
from sqlalchemy.exc import IntegrityError, OperationalError

from classsync.domain import ValidClass, join_path
from classsync.store.class_rows import insert_values
from classsync.store.statements import CLASS, JOB
from classsync.sync.ports import (
    ClaimedJob,
    ClassSnapshot,
    JobLease,
    JobStatus,
    StoredClass,
    StoreUnavailable,
)

_JOB_COLUMNS = (
    "classId",
    "realmId",
    "status",
    "generation",
    "depth",
    "attempts",
    "nextAttemptAt",
    "outcomeUnknown",
    "leaseOwner",
    "leaseExpiresAt",
    "createdAt",
    "updatedAt",
)


def _build_statement(engine: Engine) -> TextClause:
    """INSERT the row unless its key is taken, then its job from what was inserted (RETURNING)."""
    dialect = engine.dialect
    sample = insert_values("", _SAMPLE, "", datetime(2000, 1, 1))
    class_columns = list(sample)

    def typed(table: Table, name: str, param: str) -> str:
        return f"CAST(:{param} AS {table.c[name].type.compile(dialect=dialect)})"

    class_values = ", ".join(typed(CLASS, name, f"c_{i}") for i, name in enumerate(class_columns))
    job_values = ", ".join(
        "new_class.id" if name == "classId" else typed(JOB, name, f"j_{i}")
        for i, name in enumerate(_JOB_COLUMNS)
    )
    quoted_class = ", ".join(f'"{name}"' for name in class_columns)
    quoted_job = ", ".join(f'"{name}"' for name in _JOB_COLUMNS)
    # Identifiers come from our own table metadata; every value is a bound parameter. The two
    # guards are the general path's look-ups (by full name, and by the name the caller last
    # sent); ON CONFLICT DO NOTHING turns a concurrent insert of the same key into "not stored".
    return text(
        f"""
        WITH new_class AS (
            INSERT INTO "QBClass" ({quoted_class})
            SELECT {class_values}
            WHERE NOT EXISTS (
                SELECT 1 FROM "QBClass" WHERE "realmId" = :realm_id AND "fullNameKey" = :key
            ) AND NOT EXISTS (
                SELECT 1 FROM "QBClass" WHERE "realmId" = :realm_id AND "callerKey" = :key
            )
            ON CONFLICT DO NOTHING
            RETURNING id
        ), new_job AS (
            INSERT INTO "ClasssyncJob" ({quoted_job})
            SELECT {job_values} FROM new_class
            RETURNING "classId"
        )
        SELECT "classId" FROM new_job
        """  # noqa: S608
    )


_SAMPLE = ValidClass(
    qb_id=None,
    name="x",
    path=("x",),
    full_name="x",
    is_sub_class=False,
    is_active=True,
    domain_source=None,
    version_token=0,
    is_sparse=False,
)


class PostgresOneClassStore:
    """``OneClassStore`` on PostgreSQL: data-modifying CTEs make it one statement."""

    def __init__(self, engine: Engine) -> None:
        # Autocommit: the one statement is its own transaction, so no BEGIN and no COMMIT round
        # trip; the commit is as durable as any other ingest commit.
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._statement = _build_statement(engine)

    def store_new(
        self, item: ValidClass, realm_id: str, now: datetime, lease: JobLease | None
    ) -> StoredClass | None:
        """See ``OneClassStore.store_new``."""
        if item.qb_id is not None or item.parent_path:
            return None
        class_id = str(uuid4())
        params: dict[str, object] = {"realm_id": realm_id, "key": item.key}
        row = insert_values(class_id, item, realm_id, now)
        params.update({f"c_{i}": value for i, value in enumerate(row.values())})
        job = _job_values(realm_id, item.depth, now, lease)
        params.update({f"j_{i}": job.get(name) for i, name in enumerate(_JOB_COLUMNS)})
        try:
            with self._engine.connect() as connection:
                stored = connection.execute(self._statement, params).first()
        except IntegrityError:
            return None  # a race the guards did not see (e.g. the row id): the general path
        except OperationalError as error:
            raise StoreUnavailable(str(error.orig)) from error
        if stored is None:
            return None
        claimed = None if lease is None else _claimed(class_id, realm_id, item)
        return StoredClass(class_id=class_id, generation=1, claimed=claimed)


def _job_values(
    realm_id: str, depth: int, now: datetime, lease: JobLease | None
) -> dict[str, object]:
    leased = lease is not None
    return {
        "realmId": realm_id,
        "status": (JobStatus.IN_PROGRESS if leased else JobStatus.PENDING).value,
        "generation": 1,
        "depth": depth,
        "attempts": 0,
        "nextAttemptAt": now,
        "outcomeUnknown": False,
        "leaseOwner": lease.owner if lease is not None else None,
        "leaseExpiresAt": lease.until if lease is not None else None,
        "createdAt": now,
        "updatedAt": now,
    }


def _claimed(class_id: str, realm_id: str, item: ValidClass) -> ClaimedJob:
    """The job as a claim would have read it back: what was just inserted."""
    snapshot = ClassSnapshot(
        class_id=class_id,
        qb_id=None,
        name=item.name,
        key=item.key,
        is_active=item.is_active,
        is_sparse=item.is_sparse,
        version_token=0,
        full_name=join_path(item.path),
    )
    return ClaimedJob(
        class_id=class_id,
        realm_id=realm_id,
        generation=1,
        attempts=0,
        depth=item.depth,
        outcome_unknown=False,
        snapshot=snapshot,
    )
