"""Property-based fuzzing of CreateClass through the real server: no crash, every Class answered."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.engine import Engine, make_url

from classsync.api._generated import class_service_pb2 as pb
from classsync.api._generated import class_service_pb2_grpc as pb_grpc
from classsync.api.convert import FAILURE_MESSAGE
from classsync.bootstrap import App, build_app
from classsync.store.models import QBClass
from tests.e2e.conftest import service_settings
from tests.faults.harness import db_engine
from tests.fixtures.database import fresh_postgres_database

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Refusals that depend on what is stored already (a qb_id nobody knows, or held by another name).
_STATEFUL_CODES = {"UNKNOWN_QB_ID", "QB_ID_CONFLICT"}


@dataclass
class FuzzTarget:
    """One server for the whole module (examples must be fast), with its database."""

    app: App
    stub: pb_grpc.ClassServiceStub
    channel: grpc.Channel
    db: Engine


@pytest.fixture(scope="module")
def target(postgres_server_url: str, migrated_template: str, sandbox: Any) -> Iterator[FuzzTarget]:
    """A classsync on its own fresh database and realm, answering as soon as Classes are stored."""
    template = make_url(migrated_template).database
    with fresh_postgres_database(postgres_server_url, template) as url:
        realm = sandbox.admin.create_realm()
        app = build_app(service_settings(url, sandbox, realm, response_wait_seconds=0.0))
        app.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{app.port}")
        db = db_engine(url)
        try:
            yield FuzzTarget(app, pb_grpc.ClassServiceStub(channel), channel, db)
        finally:
            channel.close()
            app.stop(grace=1.0)
            db.dispose()


# --- strategies ----------------------------------------------------------------------------------

_tricky_text = st.sampled_from(
    [
        "",
        " ",
        ":",
        "a:b",
        " Padded ",
        "Tab\there",
        "New\nline",
        "Nul\x00byte",
        "Del\x7f",
        "x" * 100,
        "y" * 101,
        "Ünïcødé ✓",
        "🚀 Rocket",
        "O'Brien",
        "Company / Software Dept",
        "\u200b",
        "ﬁ",
    ]
)
# Every Unicode scalar value but surrogates (protobuf strings must be valid UTF-8).
_any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=120)
_names = st.one_of(_tricky_text, _any_text, st.sampled_from(["Ops", "East", "West", "Ops2"]))


@st.composite
def _full_names(draw: st.DrawFn, name: str) -> str:
    kind = draw(st.sampled_from(["empty", "same", "colon", "slash", "deep", "mismatch", "any"]))
    parents = draw(st.lists(_names, min_size=1, max_size=6))
    if kind == "empty":
        return ""
    if kind == "same":
        return name
    if kind == "colon":
        return ":".join([*parents[:2], name])
    if kind == "slash":
        return " / ".join([*parents[:2], name])
    if kind == "deep":
        return ":".join([*parents, name])
    if kind == "mismatch":
        return ":".join(parents)
    return draw(_any_text)


@st.composite
def _classes(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(_names)
    full_name = draw(_full_names(name))
    return {
        "qb_id": draw(
            st.one_of(
                st.just(""),
                st.sampled_from([f"50000000000000000{n:02d}" for n in range(1, 12)]),
                st.from_regex(r"\d{1,19}", fullmatch=True),
                _tricky_text,
                st.text(max_size=1010).filter(lambda t: len(t) > 1000),
            )
        ),
        "name": name,
        "full_name": full_name,
        "is_sub_class": draw(
            st.one_of(st.just(":" in full_name or " / " in full_name), st.booleans())
        ),
        "is_active": draw(st.booleans()),
        "domain_source": draw(
            st.one_of(st.sampled_from(["QBO", ""]), _tricky_text, st.just("d" * 1001), _any_text)
        ),
        "version_token": draw(st.integers(min_value=-(2**31), max_value=2**31 - 1)),
        "is_sparse": draw(st.booleans()),
    }


_streams = st.lists(st.lists(_classes(), max_size=6), min_size=1, max_size=4)


# --- oracle --------------------------------------------------------------------------------------
# The rules of a valid Class, restated here on purpose instead of calling the server's
# classsync.domain.validate(): a bug in validate() must not be copied into the expectations.
# The rules (QBO's, docs/qbo.md "The Class entity", plus what the database can hold):
#   - name, blank-trimmed: not empty, at most 100 characters, no ':', no control character;
#   - version_token >= 0; qb_id at most 100 characters, full_name and domain_source at most 1000;
#   - full_name (blank = just the name) is "A:B:C" or, when it has no ':', "A / B / C"; every
#     level, blank-trimmed, follows the name rules; the last level is the name; at most 5 levels;
#   - is_sub_class is true exactly when full_name names a parent;
#   - no NUL (U+0000) in qb_id, full_name or domain_source;
#   - identity (the stored key) is the path in "A:B:C" form, case-folded: QBO holds one class
#     for names that differ only in case (docs/architecture.md, "Identity").

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SLASH = re.compile(r"\s+/\s+")


def _name_faults(text: str) -> set[str]:
    faults = set()
    if not text:
        faults.add("NAME_EMPTY")
    if len(text) > 100:
        faults.add("NAME_TOO_LONG")
    if ":" in text:
        faults.add("NAME_HAS_COLON")
    if _CONTROL.search(text):
        faults.add("NAME_HAS_CONTROL_CHARACTER")
    return faults


def _levels(full_name: str, name: str) -> list[str]:
    text = full_name.strip()
    if not text:
        return [name]
    return [level.strip() for level in (text.split(":") if ":" in text else _SLASH.split(text))]


@dataclass(frozen=True)
class Expected:
    """What the oracle says about one Class: every rule it breaks, or its name and path."""

    faults: frozenset[str]
    name: str
    key: str


def _oracle(item: dict[str, Any]) -> Expected:
    name = item["name"].strip()
    faults = _name_faults(name)
    if item["version_token"] < 0:
        faults.add("NEGATIVE_VERSION_TOKEN")
    limits = {"qb_id": 100, "full_name": 1000, "domain_source": 1000}
    if any(len(item[field]) > limit for field, limit in limits.items()):
        faults.add("FIELD_TOO_LONG")
    levels = _levels(item["full_name"], name)
    for level in levels:
        faults |= {"FULL_NAME_EMPTY_LEVEL"} if not level else _name_faults(level)
    if levels[-1] != name:
        faults.add("FULL_NAME_MISMATCH")
    if len(levels) > 5:
        faults.add("TOO_DEEP")
    if item["is_sub_class"] and len(levels) < 2:
        faults.add("SUBCLASS_WITHOUT_PARENT")
    if not item["is_sub_class"] and len(levels) > 1:
        faults.add("TOP_LEVEL_WITH_PARENT")
    if any("\x00" in item[field] for field in ("qb_id", "full_name", "domain_source")):
        faults.add("FIELD_HAS_NUL")
    return Expected(frozenset(faults), name, ":".join(levels).casefold())


_BASE = {
    "qb_id": "",
    "full_name": "",
    "is_sub_class": False,
    "domain_source": "QBO",
    "version_token": 0,
}


@pytest.mark.parametrize(
    ("fields", "faults", "key"),
    [
        ({"name": " Ops "}, set(), "ops"),
        ({"name": "Team", "full_name": "Dept / Team", "is_sub_class": True}, set(), "dept:team"),
        ({"name": "x" * 101}, {"NAME_TOO_LONG"}, "x" * 101),
        ({"name": "a:b"}, {"NAME_HAS_COLON"}, "a:b"),
        ({"name": "E", "full_name": "A:B:C:D:F:E", "is_sub_class": True}, {"TOO_DEEP"}, None),
        ({"name": "E", "full_name": "A::E", "is_sub_class": True}, {"FULL_NAME_EMPTY_LEVEL"}, None),
        ({"name": "E", "full_name": "A:E"}, {"TOP_LEVEL_WITH_PARENT"}, None),
        ({"name": "E", "is_sub_class": True}, {"SUBCLASS_WITHOUT_PARENT"}, None),
        ({"name": "E", "full_name": "A:F", "is_sub_class": True}, {"FULL_NAME_MISMATCH"}, None),
        ({"name": "E", "domain_source": "Q\x00"}, {"FIELD_HAS_NUL"}, None),
        (
            {"name": "Ta\tb", "version_token": -1},
            {"NAME_HAS_CONTROL_CHARACTER", "NEGATIVE_VERSION_TOKEN"},
            None,
        ),
    ],
)
def test_the_oracle_on_hand_checked_classes(
    fields: dict[str, Any], faults: set[str], key: str | None
) -> None:
    expected = _oracle({**_BASE, **fields})
    assert expected.faults == faults
    if key is not None:
        assert expected.key == key


def _stored_rows(db: Engine, ids: set[str]) -> dict[str, QBClass]:
    if not ids:
        return {}
    with db.connect() as conn:
        rows = conn.execute(
            select(QBClass.id, QBClass.name, QBClass.full_name_key).where(QBClass.id.in_(ids))
        ).all()
    return {row[0]: row for row in rows}


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(requests=_streams)
def test_any_stream_is_answered_class_by_class(
    target: FuzzTarget, requests: list[list[dict[str, Any]]]
) -> None:
    messages = [pb.ClassRequest(classes=[pb.Class(**c) for c in r]) for r in requests]
    # Per-request mode: one answer per ClassRequest, in order, so each Class maps to its result.
    replies = list(
        target.stub.CreateClass(
            iter(messages),
            metadata=[("x-classsync-response", "per-request"), ("x-classsync-wait-seconds", "0")],
            timeout=30,
        )
    )
    assert len(replies) == len(requests)
    stored: dict[str, tuple[str, str]] = {}
    for request, reply in zip(requests, replies, strict=True):
        if not request:
            [result] = reply.results
            assert result.error_code == "EMPTY_REQUEST"
            assert reply.message == FAILURE_MESSAGE
            continue
        assert [r.request_index for r in reply.results] == list(range(len(request)))
        for item, result in zip(request, reply.results, strict=True):
            expected = _oracle(item)
            if expected.faults:
                # Refused on its own: for one of the rules it breaks (validation may stop at
                # the first it finds, so any of them is a right answer).
                assert result.status == "INVALID", (item, result)
                assert result.error_code in expected.faults, (item, result, expected)
                assert result.error_message
                assert not result.id
            elif result.status == "INVALID":
                # Valid on its own, refused because of what is stored: with a specific reason.
                assert result.error_code in _STATEFUL_CODES, (item, result)
                assert result.error_message
            else:
                assert result.id, (item, result)
                assert result.status in ("PENDING", "SYNCED", "FAILED")
                stored[result.id] = (expected.name, expected.key)
        if any(r.status == "INVALID" for r in reply.results):
            assert reply.message == FAILURE_MESSAGE
    # Every Class answered as stored is in the database with the name and path it was sent with
    # (the last one sent wins when several Classes of the stream are the same Class).
    rows = _stored_rows(target.db, set(stored))
    assert set(rows) == set(stored)
    for class_id, (name, key) in stored.items():
        assert (rows[class_id][1], rows[class_id][2]) == (name, key)


def test_the_server_is_still_healthy_after_fuzzing(target: FuzzTarget) -> None:
    health = health_pb2_grpc.HealthStub(target.channel)
    reply = health.Check(health_pb2.HealthCheckRequest(service="ClassService"), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_nul_characters_are_refused_one_by_one_not_failing_the_stream(target: FuzzTarget) -> None:
    # Found by the fuzzer: PostgreSQL text cannot hold U+0000, and the whole stream used to end
    # with UNKNOWN ("PostgreSQL text fields cannot contain NUL (0x00) bytes").
    classes = [
        {"name": "NulQbId", "qb_id": "12\x0034"},
        {"name": "NulSource", "domain_source": "Q\x00BO"},
        {"name": "Nul\x00Name"},
        {"name": "NulFree", "domain_source": "QBO"},
    ]
    [reply] = target.stub.CreateClass(
        iter([pb.ClassRequest(classes=[pb.Class(**c) for c in classes])]),
        metadata=[("x-classsync-wait-seconds", "0")],
        timeout=30,
    )
    codes = [r.error_code for r in reply.results]
    assert codes[:3] == ["FIELD_HAS_NUL", "FIELD_HAS_NUL", "NAME_HAS_CONTROL_CHARACTER"]
    assert reply.results[3].id
    assert reply.results[3].status != "INVALID"
