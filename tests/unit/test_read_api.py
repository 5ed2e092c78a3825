"""The read API without I/O: wire conversion, key matching, limits and watching (a fake reader)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest

from classsync.api import convert
from classsync.api._generated import class_service_pb2 as pb
from classsync.api.realm import REALM_KEY, call_realm
from classsync.domain import ClassOutcome, InvalidArgument, SyncStatus, WatchExpired
from classsync.sync.ports import ClassView, JobState
from classsync.sync.reads import ClassLookup, ClassReadService
from classsync.sync.settled import SettledBoard

pytestmark = pytest.mark.unit

REALM = "123"


def _view(class_id: str, key: str, **fields: object) -> ClassView:
    values: dict[str, object] = {
        "class_id": class_id,
        "name": key.split(":")[-1],
        "full_name": key.replace(":", " / "),
        "key": key.casefold(),
        "qb_id": None,
        "version_token": 0,
        "status": "PENDING",
        "generation": 1,
        "error_code": None,
        "error_message": None,
    }
    values.update(fields)
    return ClassView(**values)  # type: ignore[arg-type]


class FakeReader:
    """ClassReader over a list of views, all in REALM; records what it was asked."""

    def __init__(self, *views: ClassView) -> None:
        self.views = list(views)
        self.calls: list[tuple[str, list[str], list[str], list[str]]] = []

    def find(
        self,
        realm_id: str,
        ids: Sequence[str],
        qb_ids: Sequence[str],
        full_name_keys: Sequence[str],
    ) -> list[ClassView]:
        self.calls.append((realm_id, list(ids), list(qb_ids), list(full_name_keys)))
        if realm_id != REALM:
            return []
        return [
            v
            for v in self.views
            if v.class_id in ids
            or (v.qb_id and v.qb_id in qb_ids)
            or v.key in full_name_keys
            or v.caller_key in full_name_keys
        ]


def _service(
    reader: FakeReader, board: SettledBoard | None = None, **options: float
) -> ClassReadService:
    return ClassReadService(reader, board or SettledBoard(), **options)  # type: ignore[arg-type]


class TestConvert:
    def test_lookup_keeps_each_list_in_order(self) -> None:
        request = pb.GetClassesRequest(ids=["b", "a"], qb_ids=["7"], full_names=["A / B", "C"])
        assert convert.class_lookup(request) == ClassLookup(("b", "a"), ("7",), ("A / B", "C"))

    def test_result_carries_every_field(self) -> None:
        outcome = ClassOutcome(
            stream_index=3,
            request_index=1,
            status=SyncStatus.FAILED,
            name="B",
            full_name="A:B",
            id="id-1",
            qb_id="",
            sync_token="",
            error_code="QBO_6000",
            error_message="refused",
        )
        result = convert.class_result(outcome)
        assert (result.stream_index, result.request_index) == (3, 1)
        assert (result.status, result.id, result.name, result.full_name) == (
            "FAILED",
            "id-1",
            "B",
            "A:B",
        )
        assert (result.error_code, result.error_message) == ("QBO_6000", "refused")

    def test_read_response_lists_found_ids_and_summarises(self) -> None:
        outcomes = [
            ClassOutcome(0, 0, SyncStatus.SYNCED, id="x", qb_id="5", sync_token="2"),
            ClassOutcome(1, 1, SyncStatus.NOT_FOUND, id="nope", error_code="NOT_FOUND"),
            ClassOutcome(2, 0, SyncStatus.PENDING, id="y"),
        ]
        response = convert.read_response(outcomes)
        assert list(response.ids) == ["x", "y"]
        assert [r.status for r in response.results] == ["SYNCED", "NOT_FOUND", "PENDING"]
        assert response.message == "2 Classes found: 1 SYNCED, 1 PENDING; 1 key not found"

    def test_summary_of_nothing_found(self) -> None:
        counts = Counter({"NOT_FOUND": 2})
        assert convert.read_summary(counts) == "0 Classes found; 2 keys not found"
        assert counts == Counter({"NOT_FOUND": 2})


class FakeContext:
    """The one ServicerContext method call_realm reads."""

    def __init__(self, *metadata: tuple[str, str]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


class TestCallRealm:
    def test_metadata_names_the_realm(self) -> None:
        context = FakeContext(("x-other", "1"), (REALM_KEY, " 456 "))
        assert call_realm(context, "123") == "456"  # type: ignore[arg-type]

    @pytest.mark.parametrize("metadata", [(), ((REALM_KEY, "  "),)])
    def test_absent_or_blank_is_the_default(self, metadata: tuple[tuple[str, str], ...]) -> None:
        assert call_realm(FakeContext(*metadata), "123") == "123"  # type: ignore[arg-type]


class TestGet:
    def test_each_kind_of_key_finds_its_class_once_in_key_order(self) -> None:
        parent = _view("p", "A", qb_id="10", version_token=4, status="SYNCED")
        child = _view("c", "A:B", status="IN_PROGRESS", error_code="QBO_UNAVAILABLE")
        reader = FakeReader(parent, child)
        got = _service(reader).get(
            REALM, ClassLookup(ids=("c",), qb_ids=("10",), full_names=("A / B",))
        )
        assert [(o.id, o.stream_index, o.request_index) for o in got] == [("c", 0, 0), ("p", 1, 0)]
        assert reader.calls == [(REALM, ["c"], ["10"], ["a:b"])]
        assert got[0].status is SyncStatus.PENDING  # IN_PROGRESS is the queue's own business
        assert got[0].error_code == "QBO_UNAVAILABLE"
        assert (got[1].status, got[1].qb_id, got[1].sync_token) == (SyncStatus.SYNCED, "10", "4")
        assert got[1].full_name == "A"

    def test_both_full_name_forms_name_the_same_class(self) -> None:
        reader = FakeReader(_view("c", "A:B"))
        for form in ("A:B", "A / B", " A : B ", "a / b"):
            [found] = _service(reader).get(REALM, ClassLookup(full_names=(form,)))
            assert found.id == "c"

    def test_a_full_name_finds_its_holder_first_then_the_row_its_caller_last_sent(self) -> None:
        renamed = _view("c1", "holding", caller_key="company")
        reader = FakeReader(renamed)
        [found] = _service(reader).get(REALM, ClassLookup(full_names=("Company",)))
        assert (found.id, found.full_name) == ("c1", "holding")
        holder = _view("c2", "company")  # a Class holding the name now, listed first
        reader = FakeReader(holder, renamed)
        [found] = _service(reader).get(REALM, ClassLookup(full_names=("Company",)))
        assert found.id == "c2"

    def test_keys_finding_nothing_are_answered_not_found_with_the_key(self) -> None:
        lookup = ClassLookup(ids=("gone",), qb_ids=("99",), full_names=("X / Y",))
        got = _service(FakeReader()).get(REALM, lookup)
        assert [o.status for o in got] == [SyncStatus.NOT_FOUND] * 3
        assert {o.error_code for o in got} == {"NOT_FOUND"}
        assert (got[0].id, got[1].qb_id, got[2].full_name) == ("gone", "99", "X / Y")
        assert [o.stream_index for o in got] == [0, 1, 2]
        assert "realm 123" in got[0].error_message

    def test_another_realm_finds_nothing(self) -> None:
        reader = FakeReader(_view("c", "A"))
        [outcome] = _service(reader).get("456", ClassLookup(ids=("c",)))
        assert outcome.status is SyncStatus.NOT_FOUND

    def test_a_synced_class_carries_no_stale_error(self) -> None:
        reader = FakeReader(_view("c", "A", qb_id="1", status="SYNCED", error_code="QBO_5010"))
        [outcome] = _service(reader).get(REALM, ClassLookup(ids=("c",)))
        assert (outcome.error_code, outcome.error_message) == ("", "")

    @pytest.mark.parametrize(
        ("lookup", "words"),
        [
            (ClassLookup(), "names no Class"),
            (ClassLookup(ids=("a",), full_names=(" ",)), "full_names[0] is blank"),
            (ClassLookup(ids=tuple(str(i) for i in range(6))), "at most 5"),
            (ClassLookup(qb_ids=("1", "2\x00")), "qb_ids[1] contains a NUL"),
        ],
    )
    def test_bad_requests_are_invalid_arguments(self, lookup: ClassLookup, words: str) -> None:
        reader = FakeReader()
        with pytest.raises(InvalidArgument, match=words.replace("[", r"\[").replace("]", r"\]")):
            _service(reader, max_keys=5).get(REALM, lookup)
        assert reader.calls == []


class TestWatch:
    def test_settled_classes_are_sent_once_and_the_stream_ends(self) -> None:
        reader = FakeReader(_view("c", "A", qb_id="1", status="SYNCED"))
        news = list(
            _service(reader).watch(
                REALM,
                ClassLookup(ids=("c", "nope")),
                is_active=lambda: True,
                time_remaining=lambda: None,
            )
        )
        assert [(o.id, o.status) for o in news] == [
            ("c", SyncStatus.SYNCED),
            ("nope", SyncStatus.NOT_FOUND),
        ]
        assert len(reader.calls) == 1

    def test_a_pending_class_is_reported_when_the_board_posts_it(self) -> None:
        board = SettledBoard()

        class PostingReader(FakeReader):
            """The engine settles the Class right after the watch's first poll (still PENDING)."""

            def find(
                self,
                realm_id: str,
                ids: Sequence[str],
                qb_ids: Sequence[str],
                full_name_keys: Sequence[str],
            ) -> list[ClassView]:
                views = super().find(realm_id, ids, qb_ids, full_name_keys)
                if len(self.calls) == 2:
                    board.post([JobState("c", "SYNCED", 1, "77", 0, None, None)])
                return views

        reader = PostingReader(_view("c", "A"))
        # Polling is slowed to an hour: only the board can deliver the news.
        stream = _service(reader, board, poll_seconds=3600).watch(
            REALM,
            ClassLookup(full_names=("A",)),
            is_active=lambda: True,
            time_remaining=lambda: 30.0,
        )
        assert next(stream).status is SyncStatus.PENDING
        rest = list(stream)
        assert [(o.id, o.status, o.qb_id, o.stream_index) for o in rest] == [
            ("c", SyncStatus.SYNCED, "77", 0)
        ]
        assert len(reader.calls) == 2

    def test_a_class_settled_by_another_replica_is_found_by_polling(self) -> None:
        reader = FakeReader(_view("c", "A"))
        stream = _service(reader, poll_seconds=0.01).watch(
            REALM, ClassLookup(ids=("c",)), is_active=lambda: True, time_remaining=lambda: 30.0
        )
        assert next(stream).status is SyncStatus.PENDING
        reader.views = [_view("c", "A", status="FAILED", error_code="QBO_2050")]
        [settled] = list(stream)
        assert (settled.status, settled.error_code) == (SyncStatus.FAILED, "QBO_2050")

    def test_a_cancelled_caller_ends_the_watch(self) -> None:
        active = [True]
        reader = FakeReader(_view("c", "A"))
        stream = _service(reader, poll_seconds=0.01).watch(
            REALM, ClassLookup(ids=("c",)), is_active=lambda: active[0], time_remaining=lambda: None
        )
        next(stream)
        active[0] = False
        assert list(stream) == []

    def test_a_watch_longer_than_the_server_allows_expires(self) -> None:
        reader = FakeReader(_view("c", "A"))
        stream = _service(reader, poll_seconds=0.01, max_watch_seconds=0.05).watch(
            REALM, ClassLookup(ids=("c",)), is_active=lambda: True, time_remaining=lambda: None
        )
        next(stream)
        with pytest.raises(WatchExpired, match="1 Class"):
            list(stream)
