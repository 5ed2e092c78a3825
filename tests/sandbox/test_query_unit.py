"""Unit tests of the sandbox's QBO query parser and evaluator (pure logic, no sockets)."""

from __future__ import annotations

import pytest

from classsync.sandbox import query
from classsync.sandbox.config import SandboxConfig
from classsync.sandbox.realm import Realm
from classsync.sandbox.wire import QboFaultError

pytestmark = pytest.mark.unit


def _realm() -> Realm:
    realm = Realm("1")
    config = SandboxConfig()
    east = realm.create({"Name": "East"}, config)
    realm.create({"Name": "O'Brien", "ParentRef": {"value": str(east.id)}}, config)
    old = realm.create({"Name": "Old"}, config)
    realm.update({"Id": str(old.id), "SyncToken": "0", "sparse": True, "Active": False}, config)
    return realm


def _names(realm: Realm, text: str, active_only: bool = True) -> list[str]:
    result = query.run(realm, query.parse(text), active_only_default=active_only)
    return [row["Name"] for row in result.get("Class", [])]


def test_parses_python_quickbooks_where_with_escaped_quote() -> None:
    parsed = query.parse("SELECT * FROM Class WHERE Name = 'O\\'Brien' ORDERBY Name MAXRESULTS 5")
    assert parsed.conditions[0].values == ("O'Brien",)
    assert parsed.order == [("Name", False)]
    assert parsed.max_results == 5


def test_plain_select_hides_inactive_but_active_false_finds_them() -> None:
    realm = _realm()
    assert _names(realm, "select * from Class") == ["East", "O'Brien"]
    assert _names(realm, "select * from Class where Active = false") == ["Old"]
    assert _names(realm, "select * from Class", active_only=False) == ["East", "O'Brien", "Old"]


def test_fully_qualified_name_like_in_and_paging() -> None:
    realm = _realm()
    assert _names(realm, "SELECT * FROM Class WHERE FullyQualifiedName = 'east:o\\'brien'") == [
        "O'Brien"
    ]
    assert _names(realm, "SELECT * FROM Class WHERE Name LIKE 'ea%'") == ["East"]
    ids = [str(record_id) for record_id in realm.classes]
    in_query = f"SELECT * FROM Class WHERE Id IN ('{ids[0]}', '{ids[1]}') STARTPOSITION 2"
    assert _names(realm, in_query) == ["O'Brien"]


def test_count_star_returns_total_count() -> None:
    parsed = query.parse("SELECT COUNT(*) FROM Class WHERE Active IN (true, false)")
    assert query.run(_realm(), parsed, active_only_default=True) == {"totalCount": 3}


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("SELECT * FROM Class WHERE Name = 'a' OR Name = 'b'", 4000),
        ("SELECT * FROM Class WHERE Colour = 'red'", 4001),
        ("DELETE FROM Class", 4000),
        ("SELECT * FROM Class WHERE Name = 'unterminated", 4000),
    ],
)
def test_unsupported_queries_fault(text: str, code: int) -> None:
    with pytest.raises(QboFaultError) as caught:
        query.run(_realm(), query.parse(text), active_only_default=True)
    assert caught.value.code == code
