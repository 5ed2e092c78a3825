"""`classsync health` dials loopback when the server binds a wildcard address."""

import pytest

from classsync.cli import _loopback_address

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("bound", "dialled"),
    [
        ("0.0.0.0:50051", "127.0.0.1:50051"),
        ("[::]:50051", "127.0.0.1:50051"),
        (":50051", "127.0.0.1:50051"),
        ("127.0.0.1:6000", "127.0.0.1:6000"),
        ("grpc.internal:443", "grpc.internal:443"),
    ],
)
def test_wildcard_binds_are_probed_on_loopback(bound: str, dialled: str) -> None:
    assert _loopback_address(bound) == dialled
