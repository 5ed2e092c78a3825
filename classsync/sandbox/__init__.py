"""Local QBO emulator (OAuth 2.0 + Class API + limits + faults): `classsync sandbox`."""

from classsync.sandbox.client import SandboxAdmin, SandboxAdminError
from classsync.sandbox.config import SandboxConfig
from classsync.sandbox.server import RunningSandbox, start_in_thread

__all__ = [
    "RunningSandbox",
    "SandboxAdmin",
    "SandboxAdminError",
    "SandboxConfig",
    "start_in_thread",
]
