"""A synced job recorded in one statement, its own transaction: the outcome's latency hot path.

Through a unit of work, recording a synced job costs BEGIN, ``SET LOCAL synchronous_commit``,
the link UPDATE, the job UPDATE and COMMIT: five round trips, about 2.5 ms between QBO's answer
and the waiting call's wake-up on a busy machine (docs/performance.md, "c. overhead"). Here the
same writes are one autocommitted statement: data-modifying CTEs, the job's UPDATE reading the
link's result so the Class row is locked before the job row (the order ingest locks them in), and
``set_config`` relaxing this one commit as ``JobQueue._relax_commit`` does.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError, OperationalError

from classsync.domain import QboClass
from classsync.store.batch_outcomes import link_values, sync_token_int
from classsync.sync.ports import (
    ClaimedJob,
    JobState,
    JobStatus,
    StoreConflict,
    StoreUnavailable,
)

_SYNCED = JobStatus.SYNCED.value
_PENDING = JobStatus.PENDING.value
_IN_PROGRESS = JobStatus.IN_PROGRESS.value

# The same columns as statements.LINK and FINISH / REQUEUE_NEWER: the generation synced is
# finished; a newer one (the caller sent it meanwhile) is queued again, due now, attempts reset.
_RECORD_SYNCED = text(
    f"""
    WITH link AS (
        UPDATE "QBClass" SET
            "qbId" = :qb_id, "versionToken" = :token, "qboName" = :qbo_name,
            "qboParentId" = :qbo_parent_id, "qboActive" = :qbo_active, "qboEditedAt" = NULL,
            "updatedAt" = :now
        WHERE id = :class_id
        RETURNING id
    ), job AS (
        UPDATE "ClasssyncJob" AS j SET
            status = CASE WHEN j.generation = :generation THEN '{_SYNCED}' ELSE '{_PENDING}' END,
            "syncedAt" = CASE WHEN j.generation = :generation THEN :now ELSE j."syncedAt" END,
            attempts = CASE WHEN j.generation = :generation THEN j.attempts ELSE 0 END,
            "nextAttemptAt" = CASE
                WHEN j.generation = :generation THEN j."nextAttemptAt" ELSE :now END,
            "outcomeUnknown" = false, "leaseOwner" = NULL, "leaseExpiresAt" = NULL,
            "lastErrorCode" = NULL, "lastErrorMessage" = NULL, "updatedAt" = :now
        FROM link
        WHERE j."classId" = link.id AND j."classId" = :class_id
            AND j."leaseOwner" = :owner AND j.status = '{_IN_PROGRESS}'
        RETURNING j.status
    )
    SELECT (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed,
           (SELECT status FROM job) AS status
    """  # noqa: S608 - only our own constants are formatted in; values are bound
)


class PostgresOneStatementOutcome:
    """``OneStatementOutcome`` on PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        # Autocommit: the statement is its own transaction (no BEGIN, no COMMIT round trip).
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")

    def record_synced(
        self, claimed: ClaimedJob, owner: str, qbo: QboClass, now: datetime
    ) -> JobState | None:
        """See ``JobQueue.record_synced``: the link is stored even when the lease was lost."""
        params = {
            **link_values(claimed.class_id, qbo, now),
            "owner": owner,
            "generation": claimed.generation,
        }
        try:
            with self._engine.connect() as connection:
                row = connection.execute(_RECORD_SYNCED, params).one()
        except IntegrityError as error:
            raise StoreConflict(str(error.orig)) from error
        except OperationalError as error:
            raise StoreUnavailable(str(error.orig)) from error
        if row.status is None:
            return None  # our lease ran out and another worker owns the job now
        return JobState(
            class_id=claimed.class_id,
            status=row.status,
            generation=claimed.generation,
            qb_id=qbo.id,
            version_token=sync_token_int(qbo.sync_token),
            error_code=None,
            error_message=None,
        )
