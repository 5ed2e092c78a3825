"""The classsync command's own surface: --version, settings listed in --help, autostart rule."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from classsync import __version__
from classsync.cli import COMMAND_SETTINGS, main, setting_names
from classsync.config import Settings

pytestmark = pytest.mark.unit


def test_version_is_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"classsync {__version__}"
    # One source: the installed distribution's version is read from classsync.__version__.
    assert version("classsync") == __version__


@pytest.mark.parametrize("command", ["serve", *COMMAND_SETTINGS])
def test_each_help_lists_the_settings_it_reads(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    expected = setting_names() if command == "serve" else COMMAND_SETTINGS[command]
    assert "settings read" in text
    missing = [name for name in expected if name not in text]
    assert missing == []


def test_setting_names_cover_every_field() -> None:
    names = setting_names()
    assert len(names) == len(Settings.model_fields)
    assert {"DATABASE_URL", "MIGRATE_ON_START", "SANDBOX_AUTOSTART", "QBO_CLIENT_ID"} <= set(names)
    assert all(name.isupper() for name in names)


@pytest.fixture(autouse=True)
def _no_settings_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*setting_names(), "ENV", "CLIENT_ID", "CLIENT_SECRET", "REDIRECT_URI"]:
        monkeypatch.delenv(name, raising=False)


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, True),  # emulator QBO + default SQLite: a development checkout
        ({"database_url": "postgresql://u@db:5432/prod"}, False),
        ({"database_url": "postgresql://u@db:5432/prod", "sandbox_autostart": "true"}, True),
        ({"sandbox_autostart": "false"}, False),
        ({"qbo_environment": "production", "sandbox_autostart": "true"}, False),
        ({"qbo_environment": "http://127.0.0.1:9999/.well-known/openid_configuration"}, False),
    ],
)
def test_emulator_autostarts_only_for_a_development_setup(
    values: dict[str, object], expected: bool
) -> None:
    assert _settings(**values).should_autostart_sandbox is expected


def test_empty_sandbox_autostart_means_automatic() -> None:
    assert _settings(sandbox_autostart="").sandbox_autostart is None


def test_default_redirect_uri_is_localhost_not_an_ip() -> None:
    # Intuit refuses IP addresses in redirect URIs.
    assert _settings().qbo_redirect_uri == "http://localhost:8766/callback"
