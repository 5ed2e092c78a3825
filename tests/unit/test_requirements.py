"""A missing database or tool skips a test locally but fails it when CI is set."""

from __future__ import annotations

import pytest

from tests.fixtures.requirements import on_ci, require_or_skip

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("value", ["true", "1", "yes", "TRUE"])
def test_on_ci_a_missing_requirement_fails_the_test(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CI", value)
    assert on_ci()
    with pytest.raises(pytest.fail.Exception) as failed:
        require_or_skip("MariaDB", "set TEST_MYSQL_URL")
    assert "MariaDB is missing: set TEST_MYSQL_URL" in str(failed.value)


@pytest.mark.parametrize("value", [None, "", "false", "0", "no"])
def test_off_ci_a_missing_requirement_skips_the_test(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert not on_ci()
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_or_skip("node", "install Node.js")
    assert "node is missing: install Node.js" in str(skipped.value)
