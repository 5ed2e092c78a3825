"""Domain rules: validation, full-name parsing, identity keys."""

import pytest

from classsync.domain import ClassInput, ErrorCode, Rejection, ValidClass, split_full_name, validate

pytestmark = pytest.mark.unit


def _class(**fields: object) -> ClassInput:
    base = {"name": "Sales", "full_name": "Sales", "is_active": True}
    base.update(fields)
    return ClassInput(**base)  # type: ignore[arg-type]


class TestSplitFullName:
    def test_qbo_colon_form(self) -> None:
        assert split_full_name("A:B:C") == ("A", "B", "C")

    def test_seed_slash_form(self) -> None:
        assert split_full_name("Company / Software Dept") == ("Company", "Software Dept")

    def test_a_slash_inside_a_name_without_spaces_is_part_of_the_name(self) -> None:
        assert split_full_name("R/D") == ("R/D",)

    def test_blank_is_empty(self) -> None:
        assert split_full_name("   ") == ()


class TestValidate:
    def test_top_level_class_is_normalised(self) -> None:
        result = validate(_class(qb_id="", domain_source=""))
        assert isinstance(result, ValidClass)
        assert result.qb_id is None  # the seed's "" means "no QBO id yet"
        assert result.domain_source is None
        assert result.key == "sales"  # identity: QBO form, case-folded
        assert result.depth == 1

    def test_sub_class_in_seed_form_gets_a_qbo_key(self) -> None:
        result = validate(
            _class(name="Software Dept", full_name="Company / Software Dept", is_sub_class=True)
        )
        assert isinstance(result, ValidClass)
        assert result.key == "company:software dept"
        assert result.parent_path == ("Company",)
        assert result.full_name == "Company / Software Dept"  # stored as the caller wrote it

    def test_missing_full_name_means_top_level(self) -> None:
        result = validate(_class(full_name=""))
        assert isinstance(result, ValidClass)
        assert result.path == ("Sales",)

    @pytest.mark.parametrize(
        ("fields", "code"),
        [
            ({"name": "", "full_name": ""}, ErrorCode.NAME_EMPTY),
            ({"name": "   ", "full_name": ""}, ErrorCode.NAME_EMPTY),
            ({"name": "x" * 101, "full_name": ""}, ErrorCode.NAME_TOO_LONG),
            ({"name": "A:B", "full_name": ""}, ErrorCode.NAME_HAS_COLON),
            ({"name": "Tab\there", "full_name": ""}, ErrorCode.NAME_HAS_CONTROL_CHARACTER),
            ({"name": "B", "full_name": "A:C", "is_sub_class": True}, ErrorCode.FULL_NAME_MISMATCH),
            (
                {"name": "B", "full_name": "A::B", "is_sub_class": True},
                ErrorCode.FULL_NAME_EMPTY_LEVEL,
            ),
            (
                {"name": "Sales", "full_name": "Sales", "is_sub_class": True},
                ErrorCode.SUBCLASS_WITHOUT_PARENT,
            ),
            (
                {"name": "B", "full_name": "A:B", "is_sub_class": False},
                ErrorCode.TOP_LEVEL_WITH_PARENT,
            ),
            ({"name": "F", "full_name": "A:B:C:D:E:F", "is_sub_class": True}, ErrorCode.TOO_DEEP),
            ({"version_token": -1}, ErrorCode.NEGATIVE_VERSION_TOKEN),
            ({"qb_id": "9" * 101}, ErrorCode.FIELD_TOO_LONG),
            ({"domain_source": "d" * 1001}, ErrorCode.FIELD_TOO_LONG),
        ],
    )
    def test_bad_input_gets_a_specific_reason(self, fields: dict, code: ErrorCode) -> None:
        result = validate(_class(**fields))
        assert isinstance(result, Rejection)
        assert result.code is code
        assert result.message

    def test_five_levels_is_the_limit(self) -> None:
        result = validate(_class(name="E", full_name="A:B:C:D:E", is_sub_class=True))
        assert isinstance(result, ValidClass)
        assert result.depth == 5

    def test_name_of_exactly_100_characters_is_fine(self) -> None:
        assert isinstance(validate(_class(name="x" * 100, full_name="")), ValidClass)
