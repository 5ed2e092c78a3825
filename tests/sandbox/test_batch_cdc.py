"""Batch (per-item Faults inside HTTP 200) and Change Data Capture through python-quickbooks."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from quickbooks import QuickBooks
from quickbooks.batch import BatchManager, batch_create, batch_update
from quickbooks.cdc import change_data_capture
from quickbooks.exceptions import QuickbooksException
from quickbooks.objects.base import Ref
from quickbooks.objects.trackingclass import Class

from classsync.sandbox import RunningSandbox
from tests.fixtures.sandbox import make_qbo_client

pytestmark = pytest.mark.integration


def _class(name: str, parent_id: str | None = None) -> Class:
    item = Class()
    item.Name = name
    if parent_id is not None:
        item.ParentRef = Ref()
        item.ParentRef.value = parent_id
        item.SubClass = True
    return item


def test_batch_with_mixed_successes_and_faults(qbo: QuickBooks) -> None:
    existing = _class("Taken").save(qb=qbo)
    result = batch_create(
        [_class("New 1"), _class("Taken"), _class("x:y"), _class("New 2")], qb=qbo
    )
    assert sorted(c.Name for c in result.successes) == ["New 1", "New 2"]
    codes = sorted(fault.Error[0].code for fault in result.faults)
    assert codes == ["2040", "6240"]
    assert existing.Id not in {c.Id for c in result.successes}


def test_batch_items_cannot_see_classes_created_earlier_in_the_batch(
    sandbox: RunningSandbox, qbo: QuickBooks
) -> None:
    next_id = str(int(_class("Before").save(qb=qbo).Id) + 1)
    result = batch_create([_class("Parent"), _class("Child", parent_id=next_id)], qb=qbo)
    assert [c.Name for c in result.successes] == ["Parent"]
    assert result.faults[0].Error[0].code == "2500"  # docs/qbo.md, "Errors"


def test_batch_update_reports_stale_items(qbo: QuickBooks) -> None:
    one, two = _class("U1").save(qb=qbo), _class("U2").save(qb=qbo)
    one.Name, two.Name = "U1 new", "U2 new"
    two.SyncToken = "7"
    result = batch_update([one, two], qb=qbo)
    assert [c.Name for c in result.successes] == ["U1 new"]
    assert result.faults[0].Error[0].code == "5010"


def test_batch_over_30_items_is_throttled(qbo: QuickBooks) -> None:
    manager = BatchManager("create", max_request_items=31)
    with pytest.raises(QuickbooksException) as caught:
        manager.save([_class(f"B{i}") for i in range(31)], qb=qbo)
    assert "ThrottleExceeded" in caught.value.message  # XML 429 body by default
    assert Class.count(qb=qbo) == 0


def test_batch_requests_per_minute(sandbox_factory: Callable[..., RunningSandbox]) -> None:
    running = sandbox_factory(batch_requests_per_minute=2, throttle_body="json")
    qb = make_qbo_client(running)
    batch_create([_class("a")], qb=qb)
    batch_create([_class("b")], qb=qb)
    with pytest.raises(QuickbooksException) as caught:
        batch_create([_class("c")], qb=qb)
    assert caught.value.error_code == 3001
    assert Class.count(qb=qb) == 2  # ordinary calls still go through


def test_cdc_returns_changes_since_including_deactivations(qbo: QuickBooks) -> None:
    before = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=1)
    kept = _class("Kept").save(qb=qbo)
    gone = _class("Gone").save(qb=qbo)
    off = Class.get(gone.Id, qb=qbo)
    off.Active = False
    off.save(qb=qbo)

    response = change_data_capture([Class], before, qb=qbo)
    changed = {c.Name: c for c in response.Class}
    assert set(changed) == {"Kept", "Gone"}
    assert changed["Gone"].Active is False
    assert changed["Gone"].SyncToken == "1"
    assert kept.Id in {c.Id for c in response.Class}

    later = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=2)
    assert not hasattr(change_data_capture([Class], later, qb=qbo), "Class")


def test_cdc_sees_an_update_made_after_a_checkpoint(qbo: QuickBooks) -> None:
    item = _class("Moving").save(qb=qbo)
    time.sleep(1.05)  # MetaData has one-second precision
    checkpoint = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    fresh = Class.get(item.Id, qb=qbo)
    fresh.Name = "Moved"
    fresh.save(qb=qbo)
    names = [c.Name for c in change_data_capture([Class], checkpoint, qb=qbo).Class]
    assert names == ["Moved"]
