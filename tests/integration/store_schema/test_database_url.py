"""normalize_database_url: the Node service's DATABASE_URL forms become SQLAlchemy URLs."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from classsync.store.database import normalize_database_url

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            "postgresql://user:pass@host:5432/db?schema=public",
            "postgresql+psycopg://user:pass@host:5432/db?options=-csearch_path%3Dpublic",
        ),
        (
            "postgres://user:pass@host:5432/db?schema=sales",
            "postgresql+psycopg://user:pass@host:5432/db?options=-csearch_path%3Dsales",
        ),
        (
            "postgresql://postgres@127.0.0.1:5432/test",
            "postgresql+psycopg://postgres@127.0.0.1:5432/test",
        ),
        (
            "postgresql+psycopg://u:p@h/db?sslmode=require",
            "postgresql+psycopg://u:p@h/db?sslmode=require",
        ),
        (
            "mysql://root@127.0.0.1:3306/test",
            "mysql+pymysql://root@127.0.0.1:3306/test?charset=utf8mb4",
        ),
        ("mariadb://root@db/test?charset=utf8", "mysql+pymysql://root@db/test?charset=utf8"),
        ("mysql+pymysql://root@db/test", "mysql+pymysql://root@db/test?charset=utf8mb4"),
        ("sqlite:///./classsync.db", "sqlite:///./classsync.db"),
        ("sqlite:////var/lib/classsync.db", "sqlite:////var/lib/classsync.db"),
        ("file:./dev.db", "sqlite:///./dev.db"),
    ],
)
def test_forms(given: str, expected: str) -> None:
    """Each accepted form maps to one exact SQLAlchemy URL."""
    assert normalize_database_url(given) == expected


def test_schema_becomes_search_path_option() -> None:
    """Prisma's ?schema= turns into libpq's options, and is gone from the query."""
    url = make_url(normalize_database_url("postgresql://u@h/db?schema=public&sslmode=disable"))
    assert url.query == {"options": "-csearch_path=public", "sslmode": "disable"}


def test_schema_joins_existing_options() -> None:
    """An explicit options parameter is kept and the search_path appended to it."""
    url = make_url(
        normalize_database_url("postgresql://u@h/db?options=-cstatement_timeout%3D5000&schema=s")
    )
    assert url.query["options"] == "-cstatement_timeout=5000 -csearch_path=s"


def test_prisma_only_parameters_are_dropped() -> None:
    """Prisma's pool settings would make psycopg refuse the URL ("invalid connection option")."""
    url = make_url(
        normalize_database_url(
            "postgresql://u@h/db?connection_limit=5&pool_timeout=10&pgbouncer=true&application_name=x"
        )
    )
    assert dict(url.query) == {"application_name": "x"}


def test_password_with_special_characters_survives() -> None:
    """Percent-encoded credentials are decoded once, not lost or double-encoded."""
    url = make_url(normalize_database_url("postgresql://us%40er:p%3Ass%25w@h:5432/db"))
    assert (url.username, url.password, url.port) == ("us@er", "p:ss%w", 5432)


def test_whitespace_around_the_url_is_ignored() -> None:
    """A DATABASE_URL pasted with a trailing newline still works."""
    assert normalize_database_url("  sqlite:///x.db\n") == "sqlite:///x.db"
