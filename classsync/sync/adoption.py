"""Adoption: rows a Node database holds with no QBO Id and no sync job get a job, like a resend."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from classsync.domain import Rejection, ValidClass, validate
from classsync.sync.ports import Clock, UnitOfWork, UnsyncedRow

# Rows read and queued per transaction: small enough to keep each one short.
_CHUNK = 500


@dataclass
class AdoptionReport:
    """What ``adopt_unsynced`` did: rows queued, and each row left alone with the reason."""

    queued: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (class id, why)


def adopt_unsynced(
    uow_factory: Callable[[], UnitOfWork],
    *,
    realm_id: str,
    clock: Clock,
    dry_run: bool = False,
) -> AdoptionReport:
    """Queue a sync job for every row with no qbId and no job (stored, never synced).

    Each row is sent through the same path a caller's resend takes (validation, identity,
    missing ancestors as placeholders, one job per row), under ``realm_id``: the Node service
    served one QBO company. A row is left alone, and reported, when it breaks a rule QBO
    would refuse, or when it has no identity key of its own (its full name is another row's,
    or differs from it only in case: that row is the one QBO knows). Idempotent: a row that
    has a job is never looked at again.
    """
    report = AdoptionReport()
    after: str | None = None
    while True:
        with uow_factory() as uow:
            rows = uow.classes.unsynced_without_job(after=after, limit=_CHUNK)
            if not rows:
                return report
            after = rows[-1].class_id
            adoptable = _adoptable(rows, report)
            if adoptable and not dry_run:
                uow.classes.save_batch(adoptable, realm_id, clock.now())
                uow.commit()
            report.queued += len(adoptable)


def _adoptable(rows: list[UnsyncedRow], report: AdoptionReport) -> list[ValidClass]:
    adoptable: list[ValidClass] = []
    for row in rows:
        checked = validate(row.fields)
        if isinstance(checked, Rejection):
            report.skipped.append((row.class_id, f"{checked.code.value}: {checked.message}"))
        elif row.key != checked.key:
            report.skipped.append(
                (
                    row.class_id,
                    "no full name of its own: another row holds "
                    f"{checked.key!r} (the same QBO class); that row is the one synced",
                )
            )
        else:
            adoptable.append(checked)
    return adoptable
