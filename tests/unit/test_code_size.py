"""The size guideline for the whole package: modules under ~400 lines, functions under ~60.

A module or function may be longer when a reason is written next to it: a ``# size: <reason>``
comment in the module's first lines, or on the line above the ``def``.
"""

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[2] / "classsync"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
_REASON = "# size:"


def _sources() -> list[Path]:
    return [
        path
        for path in sorted(PACKAGE.rglob("*.py"))
        if "_generated" not in path.parts and "versions" not in path.parts
    ]


def _has_reason(lines: list[str], line_number: int) -> bool:
    """A ``# size:`` comment on the line above ``line_number`` (1-based) or on it."""
    nearby = lines[max(0, line_number - 2) : line_number]
    return any(_REASON in line for line in nearby)


def oversized(path: Path) -> list[str]:
    """What in ``path`` breaks the guideline without a written reason."""
    text = path.read_text()
    lines = text.splitlines()
    found = []
    if len(lines) > MAX_MODULE_LINES and not any(_REASON in line for line in lines[:10]):
        found.append(f"{path.relative_to(PACKAGE.parent)}: {len(lines)} lines")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES and not _has_reason(lines, first):
                found.append(
                    f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}: {length}"
                )
    return found


def test_modules_and_functions_stay_small_or_say_why() -> None:
    problems = [problem for path in _sources() for problem in oversized(path)]
    assert problems == []


def test_the_check_finds_a_long_function_and_accepts_a_reason(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    long_def = tmp_path / "classsync" / "long.py"
    long_def.parent.mkdir()
    long_def.write_text(f"def f():\n{body}\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "classsync"
    try:
        assert len(oversized(long_def)) == 1
        long_def.write_text(
            f"# size: a table of constants reads best in one piece\ndef f():\n{body}\n"
        )
        assert oversized(long_def) == []
    finally:
        PACKAGE = saved
