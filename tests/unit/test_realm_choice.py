"""Which realm a CreateClass stores into, and which realms it refuses (ingest, with fakes)."""

from __future__ import annotations

import pytest

from classsync.domain import ClassInput, RealmNotConnected
from classsync.sync.service import Accepted, IngestService
from classsync.sync.settled import SettledBoard
from tests.fakes import FakeDatabase

pytestmark = pytest.mark.unit

DEFAULT = "9130350000000000001"


class Directory:
    """ports.RealmDirectory over a set of connected realms."""

    def __init__(self, *connected: str) -> None:
        self.connected = set(connected)
        self.asked: list[str] = []

    def is_connected(self, realm_id: str) -> bool:
        self.asked.append(realm_id)
        return realm_id in self.connected


def _ingest(db: FakeDatabase, directory: Directory, woken: list[str]) -> IngestService:
    return IngestService(
        db.uow,
        SettledBoard(),
        woken.append,
        realm_id=DEFAULT,
        max_classes_per_request=10,
        realms=directory,
    )


def test_a_connected_realm_gets_the_classes_and_its_engine_is_woken() -> None:
    db, directory, woken = FakeDatabase(), Directory("42"), []
    ingest = _ingest(db, directory, woken)
    ingest.check_realm("42")
    [accepted] = ingest.ingest(
        [ClassInput(name="Sales")], first_stream_index=0, request_number=1, realm_id="42"
    )
    assert isinstance(accepted, Accepted)
    assert db.job(accepted.class_id).realm_id == "42"
    assert woken == ["42"]


def test_the_default_realm_is_accepted_unasked_even_when_not_connected() -> None:
    db, directory, woken = FakeDatabase(), Directory(), []
    ingest = _ingest(db, directory, woken)
    ingest.check_realm(DEFAULT)
    [accepted] = ingest.ingest([ClassInput(name="Sales")], first_stream_index=0, request_number=1)
    assert isinstance(accepted, Accepted)
    assert db.job(accepted.class_id).realm_id == DEFAULT
    assert directory.asked == []


def test_another_realm_that_is_not_connected_is_refused_by_name() -> None:
    directory = Directory("42")
    ingest = _ingest(FakeDatabase(), directory, [])
    with pytest.raises(RealmNotConnected) as refused:
        ingest.check_realm("43")
    assert refused.value.grpc_status == "FAILED_PRECONDITION"
    assert "43" in str(refused.value)
    assert "classsync realm add 43 --refresh-token" in str(refused.value)
    # Asked every time (no cache): a realm removed a moment ago is refused at once.
    directory.connected.add("43")
    ingest.check_realm("43")
    directory.connected.discard("43")
    with pytest.raises(RealmNotConnected):
        ingest.check_realm("43")
    assert directory.asked == ["43", "43", "43"]
