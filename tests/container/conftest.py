"""The container engine and the classsync image for the container tests (docker CLI)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILT_IMAGE = "classsync:container-test"


def docker(*args: str, timeout: float = 60.0, check: bool = True) -> str:
    """Run one docker CLI command; return its stdout (stderr joins the error when it fails)."""
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        msg = f"docker {args[0]} failed ({done.returncode}): {done.stderr.strip()}"
        raise RuntimeError(msg)
    return done.stdout.strip()


def _engine_problem() -> str | None:
    """Why no container engine can be used here, or None when one answers."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    try:
        docker("info", "--format", "{{.ServerVersion}}", timeout=10)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return f"no container engine answers ({exc})"
    return None


@pytest.fixture(scope="session")
def container_engine() -> None:
    """Skip when no engine answers, except in CI (CI=true), where that is a failure."""
    problem = _engine_problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {problem}: .ci/run starts dockerd before these tests")
    pytest.skip(problem)


def _image_exists(tag: str) -> bool:
    return bool(docker("images", "-q", tag, check=False))


def _default_base_image() -> str:
    # The locally built Debian base (tools/container/build-base.sh) where it exists, else the
    # official image, which needs a registry.
    local = "local/python:3.11"
    return local if _image_exists(local) else "python:3.11-slim"


@pytest.fixture(scope="session")
def classsync_image(container_engine: None) -> str:
    """The image under test: CLASSSYNC_IMAGE when set (it must exist), else built with `make image`."""
    named = os.environ.get("CLASSSYNC_IMAGE")
    if named:
        assert _image_exists(named), f"CLASSSYNC_IMAGE={named} does not exist: run `make image`"
        return named
    base = os.environ.get("BASE_IMAGE") or _default_base_image()
    done = subprocess.run(
        ["make", "-C", str(ROOT), "image", f"IMAGE={BUILT_IMAGE}", f"BASE_IMAGE={base}"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, f"make image failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return BUILT_IMAGE
