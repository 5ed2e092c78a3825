"""The one resolver of QBO URLs and the loopback-only plain-http rule (no I/O)."""

from __future__ import annotations

import os

import pytest

from classsync.qbo.endpoints import (
    PRODUCTION_API_BASE_URL,
    SANDBOX_API_BASE_URL,
    allow_plain_http_if_loopback,
    intuit_environment,
    is_loopback_url,
    require_https_unless_loopback,
    resolve_api_base_url,
)

pytestmark = pytest.mark.unit

DISCOVERY = "http://127.0.0.1:8765/.well-known/openid_configuration"


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ("sandbox", "sandbox"),
        (" Sand ", "sandbox"),
        ("PRODUCTION", "production"),
        ("prod", "production"),
        (DISCOVERY, DISCOVERY),
    ],
)
def test_intuit_environment_normalises_keywords_and_keeps_urls(
    environment: str, expected: str
) -> None:
    assert intuit_environment(environment) == expected


@pytest.mark.parametrize(
    ("environment", "explicit", "expected"),
    [
        ("production", None, PRODUCTION_API_BASE_URL),
        ("Sandbox", None, SANDBOX_API_BASE_URL),
        (DISCOVERY, None, "http://127.0.0.1:8765/v3"),
        ("production", "http://127.0.0.1:9000/v3/", "http://127.0.0.1:9000/v3"),
        (DISCOVERY, "", "http://127.0.0.1:8765/v3"),
    ],
)
def test_api_base_url(environment: str, explicit: str | None, expected: str) -> None:
    assert resolve_api_base_url(environment, explicit) == expected


def test_an_environment_that_is_neither_keyword_nor_url_needs_an_explicit_base() -> None:
    with pytest.raises(ValueError, match="QBO_API_BASE_URL"):
        resolve_api_base_url("staging", None)


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8765/v3", True),
        ("http://127.9.9.9/v3", True),
        ("http://localhost/v3", True),
        ("http://[::1]:80/v3", True),
        ("http://10.0.0.5/v3", False),
        ("https://quickbooks.api.intuit.com/v3", False),
        ("sandbox", False),
    ],
)
def test_is_loopback_url(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback


def test_plain_http_is_refused_off_loopback() -> None:
    require_https_unless_loopback(PRODUCTION_API_BASE_URL)
    require_https_unless_loopback("http://127.0.0.1:8765/v3")
    for url in ("http://quickbooks.example.com/v3", "ftp://127.0.0.1/v3"):
        with pytest.raises(ValueError, match="use https"):
            require_https_unless_loopback(url)


@pytest.mark.parametrize(
    ("urls", "allowed"),
    [
        (("http://127.0.0.1:8765/v3", DISCOVERY), True),
        (("http://127.0.0.1:8765/v3", "sandbox"), True),
        ((PRODUCTION_API_BASE_URL, "production"), False),
        (("http://127.0.0.1:8765/v3", "http://qbo.example.com/discovery"), False),
    ],
)
def test_plain_http_switch_only_when_every_http_url_is_loopback(
    monkeypatch: pytest.MonkeyPatch, urls: tuple[str, ...], allowed: bool
) -> None:
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
    allow_plain_http_if_loopback(*urls)
    assert (os.environ.get("OAUTHLIB_INSECURE_TRANSPORT") == "1") is allowed
