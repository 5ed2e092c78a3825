"""The metered wrappers implement every method of the ports they wrap, written out by name.

A wrapper that forwarded unknown names (``__getattr__``) let a new port method through
uncounted; here a port method the wrapper does not define itself fails the test.
"""

from __future__ import annotations

import inspect

import pytest

from classsync.sync.metered import MeteredChangeFeed, MeteredGateway, MeteredUnitOfWork
from classsync.sync.metered_stores import MeteredClassStore, MeteredJobStore
from classsync.sync.ports import ClassStore, JobStore, QboGateway, UnitOfWork
from classsync.sync.remote_ports import QboChangeFeed

pytestmark = pytest.mark.unit

_WRAPPERS: list[tuple[type, type]] = [
    (ClassStore, MeteredClassStore),
    (JobStore, MeteredJobStore),
    (QboGateway, MeteredGateway),
    (QboChangeFeed, MeteredChangeFeed),
    (UnitOfWork, MeteredUnitOfWork),
]


def _declared(port: type) -> dict[str, object]:
    """What ``port`` and the port protocols it extends declare (its own declarations win)."""
    members: dict[str, object] = {}
    for cls in reversed(port.__mro__):
        if cls.__module__.startswith("classsync."):
            members.update(vars(cls))
    return members


def _port_methods(port: type) -> list[str]:
    """The methods and properties a port declares (public ones, and the context manager)."""
    return sorted(
        name
        for name, member in _declared(port).items()
        if (not name.startswith("_") or name in {"__enter__", "__exit__"})
        and (inspect.isfunction(member) or isinstance(member, property))
    )


@pytest.mark.parametrize(("port", "wrapper"), _WRAPPERS, ids=lambda c: c.__name__)
def test_every_port_method_is_written_out_in_the_wrapper(port: type, wrapper: type) -> None:
    methods = _port_methods(port)
    assert methods  # the port was read: an empty list would pass anything
    missing = [name for name in methods if name not in vars(wrapper)]
    assert missing == [], f"{wrapper.__name__} does not define {missing} of {port.__name__}"
    assert "__getattr__" not in vars(wrapper)


@pytest.mark.parametrize(("port", "wrapper"), _WRAPPERS, ids=lambda c: c.__name__)
def test_wrapper_methods_take_the_ports_parameters(port: type, wrapper: type) -> None:
    for name in _port_methods(port):
        declared = _declared(port)[name]
        if isinstance(declared, property):
            assert isinstance(vars(wrapper)[name], property), name
            continue
        expected = [(p.name, p.kind) for p in inspect.signature(declared).parameters.values()]
        actual = [
            (p.name, p.kind) for p in inspect.signature(vars(wrapper)[name]).parameters.values()
        ]
        assert actual == expected, f"{wrapper.__name__}.{name}"
