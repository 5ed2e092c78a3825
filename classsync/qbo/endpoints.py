"""Where QBO lives: the OAuth environment, the accounting API base URL, and the loopback http rule."""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

# Intuit's accounting API bases, the same ones python-quickbooks knows (docs/qbo.md,
# "python-quickbooks").
PRODUCTION_API_BASE_URL = "https://quickbooks.api.intuit.com/v3"
SANDBOX_API_BASE_URL = "https://sandbox-quickbooks.api.intuit.com/v3"

# intuit-oauth picks Intuit's discovery document for these words; anything else is a URL.
_KEYWORDS = {
    "sandbox": "sandbox",
    "sand": "sandbox",
    "production": "production",
    "prod": "production",
}
_KEYWORD_API_BASES = {
    "sandbox": SANDBOX_API_BASE_URL,
    "production": PRODUCTION_API_BASE_URL,
}


def intuit_environment(qbo_environment: str) -> str:
    """The ``environment=`` argument for intuit-oauth: ``sandbox``/``production``, or a URL.

    QBO_ENVIRONMENT is read case-insensitively and with short forms; intuit-oauth only knows the
    two exact words, so they are normalised here. Anything else is a discovery-document URL.
    """
    return _KEYWORDS.get(qbo_environment.strip().lower(), qbo_environment)


def resolve_api_base_url(qbo_environment: str, api_base_url: str | None) -> str:
    """The accounting API base (``…/v3``): explicit if given, else derived from the environment.

    python-quickbooks picks its sandbox URL only when the environment is exactly ``"sandbox"``
    (docs/qbo.md, "python-quickbooks"), so the choice is made here and always set explicitly.
    For a discovery-document URL (the local sandbox), the API sits beside it, at ``/v3``.
    """
    if api_base_url:
        return api_base_url.rstrip("/")
    known = _KEYWORD_API_BASES.get(intuit_environment(qbo_environment))
    if known:
        return known
    parts = urlsplit(qbo_environment)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"QBO environment {qbo_environment!r} is neither sandbox/production nor a URL; "
            "give the API base URL (QBO_API_BASE_URL)"
        )
    return f"{parts.scheme}://{parts.netloc}/v3"


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    """True when the URL's host is this machine."""
    return is_loopback_host(urlsplit(url).hostname)


def require_https_unless_loopback(url: str) -> None:
    """Refuse a QBO URL that would carry tokens in clear text to another machine.

    Real QBO is always https; plain http is accepted only for the local sandbox on loopback.
    """
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname)):
        return
    raise ValueError(f"refusing QBO URL {url!r}: use https (http only on loopback)")


def allow_plain_http_if_loopback(*urls: str) -> None:
    """Let requests-oauthlib send tokens over ``http://`` when every http URL given is loopback.

    requests-oauthlib refuses http:// unless OAUTHLIB_INSECURE_TRANSPORT=1 (docs/qbo.md,
    "python-quickbooks"). The switch is process-wide, so it is set only when some URL is plain
    http and all of those are on this machine; a remote http URL leaves it unset (and the SDK then
    refuses to send). Arguments that are not http URLs (``sandbox``, https URLs) are ignored.
    """
    plain = [url for url in urls if url.startswith("http://")]
    if plain and all(is_loopback_url(url) for url in plain):
        os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"


__all__ = [
    "PRODUCTION_API_BASE_URL",
    "SANDBOX_API_BASE_URL",
    "allow_plain_http_if_loopback",
    "intuit_environment",
    "is_loopback_host",
    "is_loopback_url",
    "require_https_unless_loopback",
    "resolve_api_base_url",
]
