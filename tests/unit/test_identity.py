"""plan_upsert: which stored row each incoming Class is, and what to write; no database."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from classsync.domain import (
    ClassInput,
    ErrorCode,
    KnownRows,
    Placeholder,
    Rejection,
    UpsertPlan,
    ValidClass,
    lookup_keys,
    plan_upsert,
    validate,
)

pytestmark = pytest.mark.unit


def _valid(name: str, full_name: str = "", **fields: object) -> ValidClass:
    result = validate(
        ClassInput(
            name=name,
            full_name=full_name,
            is_sub_class=bool(full_name and full_name != name),
            **fields,  # type: ignore[arg-type]
        )
    )
    assert isinstance(result, ValidClass), result
    return result


def _ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"new-{next(counter)}"


def _plan(
    items: list[ValidClass],
    by_key: dict[str, str] | None = None,
    by_qb_id: dict[str, str] | None = None,
) -> UpsertPlan:
    known = KnownRows(by_key=by_key or {}, by_qb_id=by_qb_id or {})
    return plan_upsert(items, known, new_id=_ids())


def test_a_new_name_is_a_new_row_with_a_queued_job() -> None:
    sales = _valid("Sales")
    plan = _plan([sales])
    assert plan.results == ["new-1"]
    assert plan.inserts == {"new-1": sales}
    assert plan.updates == {}
    assert plan.queue == {"new-1": 1}
    assert plan.placeholders == {}


def test_the_same_name_sent_again_updates_the_stored_row() -> None:
    sales = _valid("Sales", is_active=False)
    plan = _plan([sales], by_key={"sales": "row-1"})
    assert plan.results == ["row-1"]
    assert plan.inserts == {}
    assert plan.updates == {"row-1": sales}
    assert plan.queue == {"row-1": 1}


def test_a_qb_id_match_wins_over_the_name() -> None:
    # The name is new, but the qb_id is stored: the linked row is renamed, no row is added.
    renamed = _valid("Revenue", qb_id="42")
    plan = _plan([renamed], by_key={"sales": "row-1"}, by_qb_id={"42": "row-1"})
    assert plan.results == ["row-1"]
    assert plan.inserts == {}
    assert plan.updates == {"row-1": renamed}


def test_a_renamed_class_with_a_known_qb_id_frees_its_new_name_for_later_items() -> None:
    # After the rename, another item with the new name (no qb_id) is the same row.
    renamed = _valid("Revenue", qb_id="42")
    again = _valid("Revenue")
    plan = _plan([renamed, again], by_key={"sales": "row-1"}, by_qb_id={"42": "row-1"})
    assert plan.results == ["row-1", "row-1"]
    assert plan.inserts == {}
    assert plan.updates == {"row-1": again}


def test_missing_ancestors_become_placeholders_queued_parents_first() -> None:
    leaf = _valid("C", "A:B:C", domain_source="erp")
    plan = _plan([leaf], by_key={"a": "row-a"})
    assert plan.results == ["new-2"]
    assert plan.inserts == {
        "new-1": Placeholder(path=("A", "B"), domain_source="erp"),
        "new-2": leaf,
    }
    assert plan.placeholders == {"new-1": 2}
    assert plan.queue == {"new-2": 3}
    placeholder = plan.inserts["new-1"]
    assert (placeholder.name, placeholder.key, placeholder.full_name) == ("B", "a:b", "A:B")
    assert placeholder.is_sub_class is True
    assert placeholder.is_active is True
    assert placeholder.is_sparse is False


def test_an_ancestor_sent_after_its_child_replaces_the_placeholder() -> None:
    child = _valid("B", "A:B")
    parent = _valid("A", is_active=False)
    plan = _plan([child, parent])
    assert plan.results == ["new-2", "new-1"]
    assert plan.inserts == {"new-1": parent, "new-2": child}
    assert plan.placeholders == {}  # a Class now: its job is queued like any other
    assert plan.queue == {"new-2": 2, "new-1": 1}


def test_a_qb_id_held_by_another_row_than_the_name_is_a_conflict() -> None:
    item = _valid("Sales", qb_id="42")
    plan = _plan([item], by_key={"sales": "row-1"}, by_qb_id={"42": "row-2"})
    [rejection] = plan.results
    assert isinstance(rejection, Rejection)
    assert rejection.code is ErrorCode.QB_ID_CONFLICT
    assert plan.inserts == {}
    assert plan.updates == {}
    assert plan.queue == {}


def test_an_unknown_qb_id_is_refused_and_creates_no_ancestors() -> None:
    plan = _plan([_valid("B", "A:B", qb_id="99")])
    [rejection] = plan.results
    assert isinstance(rejection, Rejection)
    assert rejection.code is ErrorCode.UNKNOWN_QB_ID
    assert plan.inserts == {}
    assert plan.placeholders == {}


def test_slash_and_colon_forms_of_a_full_name_are_one_identity() -> None:
    stored = _plan([_valid("B", "A / B")], by_key={"a": "row-a", "a:b": "row-b"})
    assert stored.results == ["row-b"]
    assert stored.inserts == {}
    both = _plan([_valid("B", "A:B"), _valid("B", "A / B")])
    assert both.results == ["new-2", "new-2"]
    assert list(both.inserts) == ["new-1", "new-2"]


def test_duplicates_in_one_request_are_one_row_and_the_last_wins() -> None:
    first = _valid("Sales")
    last = _valid("Sales", is_active=False)
    plan = _plan([first, last])
    assert plan.results == ["new-1", "new-1"]
    assert plan.inserts == {"new-1": last}
    assert plan.queue == {"new-1": 1}
    stored = _plan([first, last], by_key={"sales": "row-1"})
    assert stored.results == ["row-1", "row-1"]
    assert stored.updates == {"row-1": last}


def test_a_name_created_earlier_in_the_request_conflicts_with_a_qb_id_rename() -> None:
    plan = _plan([_valid("Revenue"), _valid("Revenue", qb_id="42")], by_qb_id={"42": "row-1"})
    assert plan.results[0] == "new-1"
    assert isinstance(plan.results[1], Rejection)
    assert plan.results[1].code is ErrorCode.QB_ID_CONFLICT


def test_lookup_keys_cover_every_ancestor_and_qb_id() -> None:
    keys, qb_ids = lookup_keys([_valid("C", "A / B / C", qb_id="7"), _valid("A")])
    assert keys == ["a", "a:b", "a:b:c"]
    assert qb_ids == ["7"]


# --- names that differ only in case: one QBO class, so one row -----------------------------------
def test_the_identity_key_is_the_qbo_form_case_folded() -> None:
    assert _valid("Straße", "Köln / Straße").key == "köln:strasse"
    assert _valid("Sales").key == _valid("SALES").key == _valid("sales").key == "sales"


def test_a_case_variant_of_a_stored_name_updates_that_row_in_the_new_casing() -> None:
    variant = _valid("marketing")
    plan = _plan([variant], by_key={"marketing": "row-1"})
    assert plan.results == ["row-1"]
    assert plan.inserts == {}
    assert plan.updates == {"row-1": variant}  # name and full name in the casing sent last
    assert plan.queue == {"row-1": 1}


def test_case_variants_in_one_request_are_one_new_row_and_the_last_casing_wins() -> None:
    first, last = _valid("Marketing"), _valid("MARKETING")
    plan = _plan([first, last])
    assert plan.results == ["new-1", "new-1"]
    assert plan.inserts == {"new-1": last}
    assert plan.queue == {"new-1": 1}


def test_children_written_in_other_casings_share_one_parent() -> None:
    ads, web = _valid("Ads", "Marketing:Ads"), _valid("Web", "MARKETING / Web")
    plan = _plan([ads, web])
    assert plan.results == ["new-2", "new-3"]
    assert list(plan.placeholders) == ["new-1"]  # one placeholder for "Marketing"
    stored = _plan([web], by_key={"marketing": "row-m"})
    assert stored.placeholders == {}  # the stored parent is found in any casing
    assert stored.inserts == {"new-1": web}


def test_a_qb_id_rename_to_another_casing_of_its_own_name_is_no_conflict() -> None:
    renamed = _valid("SALES", qb_id="42")
    plan = _plan([renamed], by_key={"sales": "row-1"}, by_qb_id={"42": "row-1"})
    assert plan.results == ["row-1"]
    assert plan.updates == {"row-1": renamed}


def test_a_qb_id_rename_onto_a_case_variant_of_another_row_is_a_conflict() -> None:
    plan = _plan([_valid("SALES", qb_id="42")], by_key={"sales": "row-1"}, by_qb_id={"42": "row-2"})
    [rejection] = plan.results
    assert isinstance(rejection, Rejection)
    assert rejection.code is ErrorCode.QB_ID_CONFLICT


def test_lookup_keys_are_case_folded() -> None:
    keys, _ = lookup_keys([_valid("Web", "MARKETING / Web"), _valid("marketing")])
    assert keys == ["marketing", "marketing:web"]
