"""Imports point one way (docs/architecture.md, "Layers and the import direction")."""

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[2] / "classsync"

# module prefix -> prefixes it must never import
FORBIDDEN = {
    "classsync.domain": ("classsync.", "sqlalchemy", "grpc", "quickbooks", "intuitlib", "requests"),
    "classsync.api": (
        "classsync.store",
        "classsync.qbo",
        "classsync.observability",
        "sqlalchemy",
        "quickbooks",
        "intuitlib",
        "prometheus_client",
    ),
    "classsync.sync": (
        "classsync.api",
        "classsync.store",
        "classsync.qbo",
        "classsync.observability",
        "grpc",
        "quickbooks",
        "intuitlib",
        "prometheus_client",
    ),
    # Monitoring sees the others only through small protocols of its own (and sync's ports).
    "classsync.observability": (
        "classsync.api",
        "classsync.store",
        "classsync.qbo",
        "sqlalchemy",
        "grpc",
        "quickbooks",
        "intuitlib",
        "sqlalchemy",
    ),
    "classsync.store": ("classsync.api", "classsync.sync", "classsync.qbo", "grpc", "quickbooks"),
    "classsync.qbo": ("classsync.api", "classsync.sync", "classsync.store", "grpc", "sqlalchemy"),
    "classsync.sandbox": ("classsync.api", "classsync.sync", "classsync.store", "classsync.qbo"),
}
# Adapters implement the protocols the sync layer owns: the one sync module they may import.
PORTS = "classsync.sync.ports"

# The only modules that may import python-quickbooks / intuit-oauth.
SDK_MODULES = {
    "classsync.qbo.errors",
    "classsync.qbo.gateway",
    "classsync.qbo.oauth",
    "classsync.qbo.sdk_clients",
    "classsync.qbo.sdk_mapping",
    "classsync.qbo.token_manager",
}


def _modules() -> list[tuple[str, set[str]]]:
    found = []
    for path in PACKAGE.rglob("*.py"):
        if "_generated" in path.parts or "versions" in path.parts:
            continue
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(relative.parts).removesuffix(".__init__")
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module)
        found.append((name, imported))
    return found


def _within(module: str, layer: str) -> bool:
    # A layer's own modules may import each other (the domain package imports its parts).
    return module == layer or module.startswith(layer + ".")


def test_layers_import_one_way() -> None:
    problems = []
    for module, imported in _modules():
        for layer, banned in FORBIDDEN.items():
            if module == layer or module.startswith(layer + "."):
                problems += [
                    f"{module} imports {name}"
                    for name in imported
                    if name.startswith(banned) and name != PORTS and not _within(name, layer)
                ]
    assert problems == []


def test_only_the_qbo_adapter_touches_the_sdks() -> None:
    problems = [
        f"{module} imports {name}"
        for module, imported in _modules()
        for name in imported
        if name.startswith(("quickbooks", "intuitlib"))
        and module not in SDK_MODULES
        and not module.startswith("classsync.sandbox")
    ]
    assert problems == []
