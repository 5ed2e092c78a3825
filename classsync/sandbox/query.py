"""The subset of QBO's query language that Class needs: parse a SELECT and run it on a realm."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from classsync.sandbox import wire
from classsync.sandbox.realm import ClassRecord, Realm

# QBO's query language (docs/qbo.md, "The Class entity"): AND only, LIKE with '%', default 100
# rows, max 1000.
DEFAULT_MAX_RESULTS = 100
MAX_MAX_RESULTS = 1000

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:\\.|[^'\\])*')
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op><=|>=|!=|<>|=|<|>)
      | (?P<punct>[(),*])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
_OPS = {"=", "!=", "<>", "<", ">", "<=", ">=", "LIKE", "IN"}
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}
_FIELDS = {
    "id": "Id",
    "name": "Name",
    "fullyqualifiedname": "FullyQualifiedName",
    "active": "Active",
    "subclass": "SubClass",
    "parentref": "ParentRef",
    "synctoken": "SyncToken",
    "metadata.lastupdatedtime": "MetaData.LastUpdatedTime",
    "metadata.createtime": "MetaData.CreateTime",
}


@dataclass(frozen=True, slots=True)
class Condition:
    """One ``field op value`` term of a WHERE clause."""

    field: str
    op: str
    values: tuple[Any, ...]


@dataclass(slots=True)
class Query:
    """A parsed SELECT."""

    entity: str
    count: bool = False
    conditions: list[Condition] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    start: int = 1
    max_results: int = DEFAULT_MAX_RESULTS


def _tokens(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    position = 0
    text = text.strip().rstrip(";")
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise wire.bad_request(f"QueryParserError: unexpected text at {text[position:][:20]!r}")
        kind = match.lastgroup or ""
        found.append((kind, match.group(kind)))
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    return found


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.index] if self.index < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token[0] == "end":
            raise wire.bad_request("QueryParserError: the query ends too early")
        self.index += 1
        return token

    def keyword(self, *words: str) -> bool:
        kind, value = self.peek()
        if kind == "word" and value.upper() in words:
            self.index += 1
            return True
        return False

    def expect(self, word: str) -> None:
        if not self.keyword(word):
            raise wire.bad_request(f"QueryParserError: expected {word} near {self.peek()[1]!r}")

    def field_name(self) -> str:
        kind, value = self.take()
        if kind != "word":
            raise wire.bad_request(f"QueryParserError: expected a property, got {value!r}")
        canonical = _FIELDS.get(value.lower())
        if canonical is None:
            raise wire.bad_request(
                f"QueryValidationError: property '{value}' is not queryable", 4001
            )
        return canonical

    def value(self) -> Any:
        kind, raw = self.take()
        if kind == "string":
            # QBO escapes ' with a backslash (docs/qbo.md, "The Class entity").
            return re.sub(r"\\(.)", r"\1", raw[1:-1])
        if kind == "number":
            return float(raw) if "." in raw else int(raw)
        if kind == "word" and raw.lower() in {"true", "false"}:
            return raw.lower() == "true"
        raise wire.bad_request(f"QueryParserError: expected a value, got {raw!r}")

    def parse(self) -> Query:
        self.expect("SELECT")
        count = False
        if self.keyword("COUNT"):
            for symbol in "(*)":
                if self.take()[1] != symbol:
                    raise wire.bad_request("QueryParserError: expected COUNT(*)")
            count = True
        else:
            while self.peek()[1] != "" and not (
                self.peek()[0] == "word" and self.peek()[1].upper() == "FROM"
            ):
                self.take()  # a column list: the sandbox always answers whole objects
        self.expect("FROM")
        kind, entity = self.take()
        if kind != "word":
            raise wire.bad_request("QueryParserError: expected an entity name")
        query = Query(entity=entity, count=count)
        if self.keyword("WHERE"):
            query.conditions.append(self.condition())
            while self.keyword("AND"):
                query.conditions.append(self.condition())
            if self.keyword("OR"):
                raise wire.bad_request("QueryParserError: OR is not supported")
        if self.keyword("ORDERBY") or (self.keyword("ORDER") and self.keyword("BY")):
            while True:
                name = self.field_name()
                descending = self.keyword("DESC")
                if not descending:
                    self.keyword("ASC")
                query.order.append((name, descending))
                if self.peek()[1] != ",":
                    break
                self.take()
        if self.keyword("STARTPOSITION"):
            query.start = max(1, int(self.value()))
        if self.keyword("MAXRESULTS"):
            query.max_results = max(0, min(MAX_MAX_RESULTS, int(self.value())))
        if self.peek()[0] != "end":
            raise wire.bad_request(f"QueryParserError: unexpected {self.peek()[1]!r}")
        return query

    def condition(self) -> Condition:
        name = self.field_name()
        kind, raw = self.take()
        op = raw.upper()
        if op not in _OPS or (kind == "word" and op not in {"LIKE", "IN"}):
            raise wire.bad_request(f"QueryParserError: unsupported operator {raw!r}")
        if op == "IN":
            if self.take()[1] != "(":
                raise wire.bad_request("QueryParserError: expected '(' after IN")
            values = [self.value()]
            while self.peek()[1] == ",":
                self.take()
                values.append(self.value())
            if self.take()[1] != ")":
                raise wire.bad_request("QueryParserError: expected ')'")
            return Condition(name, op, tuple(values))
        return Condition(name, "!=" if op == "<>" else op, (self.value(),))


def parse(text: str) -> Query:
    """Parse a QBO SELECT statement; raise a QboFaultError (4000/4001) if it is not understood."""
    if not text or not text.strip():
        raise wire.bad_request("QueryParserError: the query is empty")
    return _Parser(text).parse()


def _actual(realm: Realm, record: ClassRecord, name: str) -> Any:
    if name == "Id":
        return record.id
    if name == "Name":
        return record.name.casefold()
    if name == "FullyQualifiedName":
        return realm.fully_qualified_name(record).casefold()
    if name == "Active":
        return record.active
    if name == "SubClass":
        return record.parent_id is not None
    if name == "ParentRef":
        return record.parent_id
    if name == "SyncToken":
        return record.sync_token
    # Times compare at the seconds precision clients see in MetaData.
    return int(record.created if name == "MetaData.CreateTime" else record.updated)


def _wanted(name: str, value: Any) -> Any:
    try:
        if name in {"Id", "ParentRef", "SyncToken"}:
            return int(value)
        if name in {"Active", "SubClass"}:
            return value if isinstance(value, bool) else str(value).lower() == "true"
        if name.startswith("MetaData."):
            return int(wire.parse_time(str(value)))
    except (TypeError, ValueError) as error:
        raise wire.bad_request(
            f"QueryValidationError: bad value {value!r} for {name}", 4001
        ) from error
    return str(value).casefold()  # QBO matches names without regard to case


def _sort_key(realm: Realm, name: str) -> Callable[[ClassRecord], Any]:
    def key(record: ClassRecord) -> Any:
        value = _actual(realm, record, name)
        return -1 if value is None else value  # top-level classes sort before sub-classes

    return key


def _matches(realm: Realm, record: ClassRecord, condition: Condition) -> bool:
    actual = _actual(realm, record, condition.field)
    if actual is None:
        return False
    if condition.op == "LIKE":
        pattern = re.escape(str(condition.values[0]).casefold()).replace("%", ".*")
        return re.fullmatch(pattern, str(actual), re.DOTALL) is not None
    wanted = [_wanted(condition.field, value) for value in condition.values]
    if condition.op == "IN":
        return actual in wanted
    target = wanted[0]
    return bool(_COMPARE[condition.op](actual, target))


def run(realm: Realm, query: Query, *, active_only_default: bool) -> dict[str, Any]:
    """Evaluate ``query`` on ``realm``; returns the ``QueryResponse`` object."""
    if query.entity.lower() != "class":
        raise wire.bad_request(
            f"QueryValidationError: the sandbox serves Class only, not {query.entity}", 4001
        )
    conditions = list(query.conditions)
    # A plain SELECT returns active list entities only (docs/qbo.md, "The Class entity").
    if active_only_default and not any(c.field == "Active" for c in conditions):
        conditions.append(Condition("Active", "=", (True,)))
    rows = [
        record
        for record in realm.classes.values()
        if all(_matches(realm, record, condition) for condition in conditions)
    ]
    if query.count:
        return {"totalCount": len(rows)}
    for name, descending in reversed(query.order or [("Id", False)]):
        rows.sort(key=_sort_key(realm, name), reverse=descending)
    page = rows[query.start - 1 : query.start - 1 + query.max_results]
    if not page:
        return {}  # QBO leaves out the entity key when nothing matches
    return {
        "Class": [realm.to_json(record) for record in page],
        "startPosition": query.start,
        "maxResults": len(page),
    }
