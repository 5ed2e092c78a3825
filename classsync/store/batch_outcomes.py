"""The outcomes of a QBO batch request written in one transaction, whatever its size."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection

from classsync.domain import QboClass
from classsync.store import statements as sql
from classsync.sync.ports import ClaimedJob, JobState, JobStatus


def record_synced_many(
    connection: Connection,
    synced: Sequence[tuple[ClaimedJob, QboClass]],
    owner: str,
    now: datetime,
) -> dict[str, JobState | None]:
    """Link each row to QBO and finish its job if still ``owner``'s: five statements in all.

    Class rows are locked first, in id order, skipping any an ingest holds: waiting for it while
    holding other rows could deadlock with it. A skipped job is left out of the answer and the
    caller records it alone. With the rows locked, a job's generation cannot move between reading
    and finishing it, so a newer version is queued again, never overwritten; a job whose lease
    was lost maps to None (the link is stored: QBO holds the class).
    """
    by_id = {job.class_id: (job, qbo) for job, qbo in synced}
    locked = [
        str(i) for i in connection.execute(sql.LOCK_CLASSES, {"ids": sorted(by_id)}).scalars()
    ]
    if not locked:
        return {}
    connection.execute(
        sql.LINK, [link_values(class_id, by_id[class_id][1], now) for class_id in locked]
    )
    owned = dict(
        connection.execute(sql.OWNED_GENERATIONS, {"ids": locked, "owner": owner}).tuples().all()
    )
    done = [i for i in locked if i in owned and owned[i] == by_id[i][0].generation]
    newer = [i for i in locked if i in owned and owned[i] != by_id[i][0].generation]
    for statement, ids in ((sql.FINISH_MANY, done), (sql.REQUEUE_NEWER_MANY, newer)):
        if ids:
            connection.execute(statement, {"ids": ids, "owner": owner, "now": now})
    finished = set(done)
    states: dict[str, JobState | None] = {}
    for class_id in locked:
        job, qbo = by_id[class_id]
        states[class_id] = (
            JobState(
                class_id=class_id,
                status=JobStatus.SYNCED.value if class_id in finished else JobStatus.PENDING.value,
                generation=job.generation,
                qb_id=qbo.id,
                version_token=sync_token_int(qbo.sync_token),
                error_code=None,
                error_message=None,
            )
            if class_id in owned
            else None
        )
    return states


def sync_token_int(sync_token: str) -> int:
    """QBO's SyncToken as the Node column's Int.

    QBO's SyncToken is a decimal string (docs/qbo.md, "Writes and SyncToken").
    """
    try:
        return int(sync_token)
    except ValueError:
        return 0


def link_values(class_id: str, qbo: QboClass, now: datetime) -> dict[str, object]:
    """The LINK statement's values: QBO's Id and SyncToken, and what QBO holds now (the conflict
    rule's base for changes read back later)."""
    return {
        "class_id": class_id,
        "qb_id": qbo.id,
        "token": sync_token_int(qbo.sync_token),
        "qbo_name": qbo.name,
        "qbo_parent_id": qbo.parent_id or None,
        "qbo_active": qbo.active,
        "now": now,
    }
