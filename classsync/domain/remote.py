"""Classes as QBO reports them back (CDC, query, webhook) and as the conflict rule compares them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from classsync.domain.classes import QBO_SEPARATOR, QboClass


def qbo_path(full_name: str) -> tuple[str, ...]:
    """The levels of a FullyQualifiedName as QBO writes it: joined with ':' only.

    Unlike a caller's full name, a name QBO reports is never read in the ``A / B`` form: a Class
    named "A / B" is one level.
    """
    return tuple(level.strip() for level in full_name.split(QBO_SEPARATOR))


@dataclass(frozen=True, slots=True)
class RemoteClass:
    """A Class as QBO holds it now, with QBO's LastUpdatedTime (naive UTC; None if not sent)."""

    qbo: QboClass
    last_updated: datetime | None = None


@dataclass(frozen=True, slots=True)
class ChangePage:
    """One QBO answer: Classes (changed since a time, or one page of all), and QBO's ``time``."""

    classes: list[RemoteClass]
    answered_at: datetime  # naive UTC


@dataclass(frozen=True, slots=True)
class WebhookNotice:
    """One webhook event, as received and as kept in the inbox (ids only, no entity data)."""

    event_id: str
    realm_id: str
    entity_name: str  # "Class", "Customer", ...
    entity_id: str  # the QBO Id
    operation: str  # "created", "updated", "deleted", ... (lower case)
    occurred_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SideValues:
    """The fields a change made in QBO can touch, on one side of the comparison."""

    name: str
    parent_id: str | None  # the parent's QBO Id; None at the top level
    active: bool


@dataclass(frozen=True, slots=True)
class LocalClass:
    """A local Class as the conflict rule sees it."""

    class_id: str
    qb_id: str | None
    key: str  # fully-qualified name, QBO form
    current: SideValues  # what the row holds (possibly a caller's change not synced yet)
    base: SideValues | None  # what QBO held at our last sync; None when not known
    version_token: int  # QBO's SyncToken as last stored
    job_status: str | None  # None: the row has no job
    qbo_edited_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RemoteApply:
    """What to write locally for one Class QBO reported (decided by ``sync.conflicts``)."""

    realm_id: str
    remote: QboClass
    local: LocalClass | None  # None: QBO created it, a new row (with a SYNCED job) is added
    values: SideValues  # the row's new current values
    key: str  # the row's new fully-qualified name
    settled: bool  # True: nothing of the caller's is left to push, the job can be SYNCED
    edited_in_qbo: bool  # True: QBO's values differ from the base (not our own write echoed)
