"""Adoption: rows another service stored get an identity key and, if never synced, a sync job."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from classsync.domain import Rejection, ValidClass, validate
from classsync.sync.ports import AdoptionCandidate, ClassStore, Clock, UnitOfWork

# Rows read and queued per transaction: small enough to keep each one short.
_CHUNK = 500


@dataclass
class AdoptionReport:
    """What ``adopt_unsynced`` did: rows queued, keys given, each row left alone and why."""

    queued: int = 0
    keyed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (class id, why)


def adopt_unsynced(
    uow_factory: Callable[[], UnitOfWork],
    *,
    realm_id: str,
    clock: Clock,
    dry_run: bool = False,
) -> AdoptionReport:
    """Make every row the Node service stored known to classsync.

    A row with no identity key (written by the Node service after the database was migrated,
    e.g. during a rollback) gets its key when no other row holds it. A row with no qbId and
    no job (stored but never synced) is then sent through the path a caller's resend takes
    (validation, identity, missing ancestors as placeholders, one job per row) under
    ``realm_id``: the Node service served one QBO company. A row is left alone, and reported,
    when it breaks a rule QBO would refuse, or when its full name is another row's (or
    differs from it only in case: that row is the one QBO knows). Idempotent. A dry run does
    the same work and rolls it back.
    """
    report = AdoptionReport()
    after: str | None = None
    while True:
        with uow_factory() as uow:
            rows = uow.classes.adoption_candidates(after=after, limit=_CHUNK)
            if not rows:
                return report
            after = rows[-1].class_id
            adoptable = _adoptable(rows, uow.classes, report)
            if adoptable:
                uow.classes.save_batch(adoptable, realm_id, clock.now())
            report.queued += len(adoptable)
            if not dry_run:
                uow.commit()


def _adoptable(
    rows: list[AdoptionCandidate], classes: ClassStore, report: AdoptionReport
) -> list[ValidClass]:
    """The rows to queue; keys given to keyless rows on the way; the others reported."""
    adoptable: list[ValidClass] = []
    for row in rows:
        checked = validate(row.fields)
        if isinstance(checked, Rejection):
            report.skipped.append((row.class_id, f"{checked.code.value}: {checked.message}"))
            continue
        if row.key is None:
            if not classes.assign_key(row.class_id, checked.key):
                report.skipped.append(
                    (
                        row.class_id,
                        f"another row holds its name {checked.key!r} (the same QBO class); "
                        "that row is the one synced",
                    )
                )
                continue
            report.keyed += 1
        elif row.key != checked.key:
            report.skipped.append(
                (row.class_id, f"its stored key {row.key!r} does not match its name")
            )
            continue
        if row.qb_id is None and not row.has_job:
            adoptable.append(checked)
    return adoptable
