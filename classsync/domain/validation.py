"""Validation of one Class as a caller sent it: QBO's name rules, paths, field limits."""

from __future__ import annotations

import re

from classsync.domain.classes import (
    MAX_DEPTH,
    MAX_FIELD_LENGTH,
    MAX_NAME_LENGTH,
    MAX_QB_ID_LENGTH,
    QBO_SEPARATOR,
    ClassInput,
    ErrorCode,
    Rejection,
    ValidClass,
    split_full_name,
)

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def _check_name(name: str, what: str) -> Rejection | None:
    if not name:
        return Rejection(ErrorCode.NAME_EMPTY, f"{what} is empty")
    if len(name) > MAX_NAME_LENGTH:
        return Rejection(
            ErrorCode.NAME_TOO_LONG,
            f"{what} has {len(name)} characters; QBO allows at most {MAX_NAME_LENGTH}",
        )
    if QBO_SEPARATOR in name:
        return Rejection(
            ErrorCode.NAME_HAS_COLON,
            f"{what} contains ':', which QBO reserves as the sub-class separator",
        )
    if _CONTROL_CHARS.search(name):
        return Rejection(
            ErrorCode.NAME_HAS_CONTROL_CHARACTER,
            f"{what} contains a control character (tab, newline, ...)",
        )
    return None


def validate(item: ClassInput) -> ValidClass | Rejection:
    """Check one Class against the domain rules; return it normalised or say why not.

    The checks run in a fixed order, so a Class with several problems is always refused for
    the same one.
    """
    name = item.name.strip()
    problem = _check_name(name, "name") or _check_fields(item)
    if problem:
        return problem
    path = split_full_name(item.full_name) if item.full_name.strip() else (name,)
    problem = _check_path(path, item, name) or _check_nul(item)
    if problem:
        return problem
    return ValidClass(
        qb_id=item.qb_id.strip() or None,
        name=name,
        path=path,
        full_name=item.full_name or None,
        is_sub_class=len(path) > 1,
        is_active=item.is_active,
        domain_source=item.domain_source or None,
        version_token=item.version_token,
        is_sparse=item.is_sparse,
    )


def _check_fields(item: ClassInput) -> Rejection | None:
    if item.version_token < 0:
        return Rejection(
            ErrorCode.NEGATIVE_VERSION_TOKEN,
            f"version_token is {item.version_token}; it cannot be negative",
        )
    for label, value, limit in (
        ("qb_id", item.qb_id, MAX_QB_ID_LENGTH),
        ("full_name", item.full_name, MAX_FIELD_LENGTH),
        ("domain_source", item.domain_source, MAX_FIELD_LENGTH),
    ):
        if len(value) > limit:
            return Rejection(
                ErrorCode.FIELD_TOO_LONG,
                f"{label} has {len(value)} characters; at most {limit} are accepted",
            )
    return None


def _check_path(path: tuple[str, ...], item: ClassInput, name: str) -> Rejection | None:
    for index, level in enumerate(path):
        if not level:
            return Rejection(
                ErrorCode.FULL_NAME_EMPTY_LEVEL,
                f"full_name {item.full_name!r} has an empty level at position {index + 1}",
            )
        problem = _check_name(level, f"level {index + 1} of full_name")
        if problem:
            return problem
    if path[-1] != name:
        return Rejection(
            ErrorCode.FULL_NAME_MISMATCH,
            f"full_name {item.full_name!r} ends with {path[-1]!r}, not with name {name!r}",
        )
    if len(path) > MAX_DEPTH:
        return Rejection(
            ErrorCode.TOO_DEEP,
            f"full_name has {len(path)} levels; QBO allows at most {MAX_DEPTH}",
        )
    if item.is_sub_class and len(path) < 2:
        return Rejection(
            ErrorCode.SUBCLASS_WITHOUT_PARENT,
            "is_sub_class is true but full_name names no parent (use 'Parent:Child')",
        )
    if not item.is_sub_class and len(path) > 1:
        return Rejection(
            ErrorCode.TOP_LEVEL_WITH_PARENT,
            f"full_name {item.full_name!r} names a parent but is_sub_class is false",
        )
    return None


def _check_nul(item: ClassInput) -> Rejection | None:
    # PostgreSQL text cannot hold U+0000 (psycopg refuses it even as a parameter), so a NUL would
    # fail the whole ClassRequest; the name's NUL is already a control character.
    for label in ("qb_id", "full_name", "domain_source"):
        if "\x00" in getattr(item, label):
            return Rejection(ErrorCode.FIELD_HAS_NUL, f"{label} contains a NUL character (U+0000)")
    return None
