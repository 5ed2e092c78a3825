"""Look-ups by a list of keys: a realm's QBClass rows by key (one index probe each), job states.

The obvious statement, ``"realmId" = r AND "fullNameKey" IN (k1, ..., k500)``, leaves the plan
to PostgreSQL's statistics, and on a table that grew from empty within one import they are stale
(autoanalyze has not run, or ran when the table was small). PostgreSQL then believes the realm
holds about a hundred rows, reads the realm's prefix of an index (every row of the realm) and
filters the keys row by row. psycopg prepares a statement run five times, and PostgreSQL's
generic plan compares each row with all 500 parameters one after another: 1.2 s per look-up at
60,000 rows (docs/performance.md, "The long-stream ingest regression").

On PostgreSQL the keys therefore travel as one array, and each key is looked up in a LATERAL
subquery that equates both columns of the ``("realmId", key)`` index. The subquery's ``OFFSET
0`` keeps PostgreSQL from flattening it into a join it could plan around the index; an
equality on both columns of that index is the cheapest plan under any statistics, so the cost
is one index probe per key whatever the table's size. MariaDB and SQLite keep ``IN (...)`` in
chunks, which they answer from the composite index.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Row, Select, Text, any_, bindparam, cast, func, select, true
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from classsync.store.statements import CLASS, JOB, in_chunks

# What a look-up returns per row: what ``plan_upsert`` needs to know of a stored row.
_COLUMNS = (
    CLASS.c.id,
    CLASS.c.qbId,
    CLASS.c.name,
    CLASS.c.fullName,
    CLASS.c.fullNameKey,
    CLASS.c.isSubClass,
    CLASS.c.isActive,
    CLASS.c.domainSource,
    CLASS.c.isSparse,
    CLASS.c.qboEditedAt,
    CLASS.c.callerKey,
    CLASS.c.callerFullName,
    CLASS.c.callerActive,
    JOB.c.status,
    JOB.c.generation,
)
LOOKUP_COLUMNS = ("fullNameKey", "callerKey", "qbId")


def _with_job() -> Select[Any]:
    return select(*_COLUMNS).select_from(CLASS.outerjoin(JOB, JOB.c.classId == CLASS.c.id))


def _probe_each_key(column: str) -> Select[Any]:
    # unnest(:keys) AS k CROSS JOIN LATERAL (... WHERE realmId = :realm AND column = k.key
    # OFFSET 0): a nested loop that probes the ("realmId", column) index once per key.
    keys = (
        func.unnest(bindparam("keys", type_=ARRAY(Text()))).table_valued("key").render_derived("k")
    )
    found = (
        _with_job()
        .where(CLASS.c.realmId == bindparam("realm"), CLASS.c[column] == keys.c.key)
        .offset(0)
        .lateral("found")
    )
    return select(found).select_from(keys).join(found, true())


def _in_list(column: str) -> Select[Any]:
    return _with_job().where(
        CLASS.c.realmId == bindparam("realm"),
        CLASS.c[column].in_(bindparam("keys", expanding=True)),
    )


# Built once: SQLAlchemy memoises a statement object's cache key (store/statements.py).
_PROBE = {column: _probe_each_key(column) for column in LOOKUP_COLUMNS}
_IN_LIST = {column: _in_list(column) for column in LOOKUP_COLUMNS}


def rows_by(
    connection: Connection, realm_id: str, column: str, values: Sequence[str]
) -> Iterator[Row[Any]]:
    """The realm's rows whose ``column`` (one of ``LOOKUP_COLUMNS``) is in ``values``, each with
    its job's ``status`` and ``generation`` (None without a job)."""
    if not values:
        return
    if connection.dialect.name == "postgresql":
        yield from connection.execute(
            _PROBE[column], {"realm": realm_id, "keys": list(values)}
        ).all()
        return
    for chunk in in_chunks(values):
        yield from connection.execute(_IN_LIST[column], {"realm": realm_id, "keys": list(chunk)})


# A job's state and its Class's QBO link, by class id. On PostgreSQL the ids travel as one array
# (``= ANY``): an IN list of 1,000 bound values cost more to render and parse, in SQLAlchemy and
# psycopg, than the look-up itself (10 ms of client CPU per 1,000 ids, now about 5 ms;
# docs/performance.md, round 3).
_STATE_COLUMNS = (
    JOB.c.status,
    JOB.c.generation,
    CLASS.c.qbId,
    CLASS.c.versionToken,
    JOB.c.lastErrorCode,
    JOB.c.lastErrorMessage,
)
_JOB_WITH_CLASS = JOB.join(CLASS, CLASS.c.id == JOB.c.classId)
_STATES_ANY = (
    # The id as text: it is handed on as a string, and a UUID object per row cost more.
    select(cast(JOB.c.classId, Text()).label("classId"), *_STATE_COLUMNS)
    .select_from(_JOB_WITH_CLASS)
    .where(
        JOB.c.classId
        == any_(cast(bindparam("ids", type_=ARRAY(Text())), ARRAY(UUID(as_uuid=False))))
    )
)
_STATES_IN = (
    select(JOB.c.classId, *_STATE_COLUMNS)
    .select_from(_JOB_WITH_CLASS)
    .where(JOB.c.classId.in_(bindparam("ids", expanding=True)))
)


def job_states(connection: Connection, class_ids: Sequence[str]) -> Iterator[Row[Any]]:
    """(class id, status, generation, qbId, versionToken, error code, error message) of each
    Class of ``class_ids`` that has a job."""
    if not class_ids:
        return
    if connection.dialect.name == "postgresql":
        # all(): one fetch, not a driver call per row.
        yield from connection.execute(_STATES_ANY, {"ids": list(class_ids)}).all()
        return
    for chunk in in_chunks(class_ids):
        yield from connection.execute(_STATES_IN, {"ids": list(chunk)})
