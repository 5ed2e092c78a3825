"""`classsync sandbox` command line: one flag (and one SANDBOX_<NAME> variable) per option."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sys
from typing import Any

from classsync.sandbox.config import GROUP_TITLES, SandboxConfig, coerce, option_fields
from classsync.sandbox.server import serve

_DESCRIPTION = """\
Local stand-in for QuickBooks Online: OAuth 2.0 (discovery, authorize, token, revoke) and the
Class API under /v3/company/{realmId}/, with QBO's rules and limits and faults on demand.
Point intuit-oauth at the discovery URL and python-quickbooks at the API base URL it prints.

Every option can also be set with an environment variable SANDBOX_<NAME> (e.g. SANDBOX_PORT=9000,
SANDBOX_LATENCY_MS=50); a flag wins over the variable. Faults, limits and rules can be changed
while running through the admin API under /_sandbox/ (see classsync/sandbox/README.md).
"""
_EPILOG = """\
development app: client_id sandbox-client-id, client_secret sandbox-client-secret, realm
9130350000000000001, standing refresh token sandbox-dev-refresh-token (all options above).
"""


def env_name(option: str) -> str:
    """The environment variable that sets ``option``."""
    return f"SANDBOX_{option.upper()}"


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser; its --help documents every option."""
    parser = argparse.ArgumentParser(
        prog="classsync sandbox",
        usage="%(prog)s [options]",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for group_name, title in GROUP_TITLES.items():
        group = parser.add_argument_group(title)
        for option in option_fields(group_name):
            flag = "--" + option.name.replace("_", "-")
            default = option.default
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            shown = "(none)" if shown in ("", ()) else shown
            help_text = (
                f"{option.metadata['help']} [default: {shown!s}; env {env_name(option.name)}]"
            )
            choices = option.metadata["choices"] or None
            if isinstance(default, bool):
                group.add_argument(
                    flag, dest=option.name, action=argparse.BooleanOptionalAction, help=help_text
                )
            else:
                metavar = None if choices else option.name.upper()
                group.add_argument(
                    flag, dest=option.name, metavar=metavar, choices=choices, help=help_text
                )
    extra = parser.add_argument_group("shortcuts")
    extra.add_argument(
        "--unlimited",
        action="store_true",
        help="turn every limit off (same as --no-limits-enabled)",
    )
    return parser


def config_from(args: argparse.Namespace, environ: dict[str, str]) -> SandboxConfig:
    """SandboxConfig from defaults, then SANDBOX_* variables, then flags (ValueError if bad)."""
    values: dict[str, Any] = {}
    for option in dataclasses.fields(SandboxConfig):
        from_env = environ.get(env_name(option.name))
        if from_env is not None:
            values[option.name] = coerce(option.name, from_env)
        from_flag = getattr(args, option.name)
        if from_flag is not None:
            values[option.name] = coerce(option.name, from_flag)
    if args.unlimited:
        values["limits_enabled"] = False
    return SandboxConfig(**values)


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox in the foreground until interrupted. Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from(args, dict(os.environ))
    except ValueError as error:
        parser.error(str(error))
    if config.access_log:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    try:
        asyncio.run(serve(config))
    except OSError as error:
        print(
            f"classsync sandbox: cannot listen on {config.host}:{config.port}: {error}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        pass
    return 0
