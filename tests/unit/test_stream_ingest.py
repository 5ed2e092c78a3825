"""A stream's ClassRequests stored in order while the next is checked (ingest_stream, fakes)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import pytest

from classsync.domain import ClassInput, ClassOutcome, RequestTooLarge
from classsync.sync.ports import StoreUnavailable
from classsync.sync.service import Accepted, IngestService
from classsync.sync.settled import SettledBoard
from classsync.sync.stream_ingest import ingest_stream
from tests.fakes import FakeDatabase

pytestmark = pytest.mark.unit

REALM = "9130350000000000001"


def _service(db: FakeDatabase) -> IngestService:
    return IngestService(
        db.uow, SettledBoard(), lambda _realm: None, realm_id=REALM, max_classes_per_request=3
    )


def _requests(*sizes: int) -> list[list[ClassInput]]:
    return [[ClassInput(name=f"R{r}C{i}") for i in range(size)] for r, size in enumerate(sizes)]


def _names(results: Sequence[Accepted | ClassOutcome]) -> list[str]:
    return [r.name for r in results]


def test_answers_come_in_stream_order_with_stream_indexes() -> None:
    db = FakeDatabase()
    requests = _requests(2, 3, 1, 2)
    answers = list(ingest_stream(_service(db), requests, realm_id=REALM))
    assert [_names(a) for a in answers] == [[c.name for c in r] for r in requests]
    indexes = [r.stream_index for answer in answers for r in answer]
    assert indexes == list(range(8))
    assert all(isinstance(r, Accepted) for answer in answers for r in answer)
    assert db.commits == 4  # one transaction per ClassRequest


def test_each_request_is_stored_after_the_one_before_committed() -> None:
    # A child's request comes right after its parent's: the parent is found, not re-created.
    db = FakeDatabase()
    requests = [
        [ClassInput(name="P")],
        [ClassInput(name="C", full_name="P:C", is_sub_class=True)],
        [ClassInput(name="D", full_name="P:C:D", is_sub_class=True)],
    ]
    answers = list(ingest_stream(_service(db), requests, realm_id=REALM))
    ids = [a[0].class_id for a in answers if isinstance(a[0], Accepted)]
    assert len(ids) == 3
    assert len(db.tables.classes) == 3  # no placeholder was made for P or P:C


def test_a_failed_store_ends_the_stream_after_the_earlier_answers() -> None:
    db = FakeDatabase()
    service = _service(db)
    store = service.store
    stored: list[int] = []

    def store_failing_request_3(request):  # type: ignore[no-untyped-def]
        if request.request_number == 3:
            raise StoreUnavailable("connection lost (scripted)")
        stored.append(request.request_number)
        return store(request)

    service.store = store_failing_request_3  # type: ignore[method-assign]
    answers: list[list[Accepted | ClassOutcome]] = []
    with pytest.raises(StoreUnavailable):
        answers.extend(ingest_stream(service, _requests(1, 1, 1, 1), realm_id=REALM))
    assert [_names(a) for a in answers] == [["R0C0"], ["R1C0"]]
    assert stored == [1, 2]  # request 4 was read and checked, never stored
    assert sorted(row.name for row in db.tables.classes.values()) == ["R0C0", "R1C0"]


def test_a_request_too_large_is_raised_after_the_answer_before_it() -> None:
    db = FakeDatabase()
    stream = ingest_stream(_service(db), _requests(1, 2, 4, 1), realm_id=REALM)
    assert _names(next(stream)) == ["R0C0"]
    assert _names(next(stream)) == ["R1C0", "R1C1"]
    with pytest.raises(RequestTooLarge):
        next(stream)
    assert len(db.tables.classes) == 3  # the too-large request and the one after: not stored


def test_the_next_request_is_read_while_one_is_stored() -> None:
    # Request 3 is pulled from the caller (here: a generator) before request 2's answer.
    db = FakeDatabase()
    read: list[int] = []
    answered: list[int] = []

    def requests() -> Iterator[list[ClassInput]]:
        for number, request in enumerate(_requests(1, 1, 1), start=1):
            read.append(number)
            yield request

    for number, _answer in enumerate(ingest_stream(_service(db), requests(), realm_id=REALM), 1):
        answered.append(number)
        if number == 2:
            assert read == [1, 2, 3]
    assert answered == [1, 2, 3]


def test_a_one_request_stream_is_stored_in_the_calling_thread() -> None:
    db = FakeDatabase()
    threads: list[str] = []
    service = _service(db)
    store = service.store

    def spying_store(request):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        return store(request)

    service.store = spying_store  # type: ignore[method-assign]
    list(ingest_stream(service, _requests(1), realm_id=REALM))
    list(ingest_stream(service, _requests(1, 1), realm_id=REALM))
    assert threads[0] == threading.current_thread().name
    assert threads[1] == threading.current_thread().name  # a stream's first request
    assert threads[2].startswith("ingest-stream")


def test_an_empty_request_is_refused_in_its_place() -> None:
    db = FakeDatabase()
    answers = list(ingest_stream(_service(db), _requests(1, 0, 1), realm_id=REALM))
    assert [len(a) for a in answers] == [1, 1, 1]
    refusal = answers[1][0]
    assert isinstance(refusal, ClassOutcome)
    assert refusal.error_code == "EMPTY_REQUEST"
    assert answers[2][0].stream_index == 1
