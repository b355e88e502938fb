"""Every error redis-py can raise becomes ``BackendUnavailable`` at the adapter boundary."""

from __future__ import annotations

import pytest
import redis.asyncio
import redis.exceptions

from mianzhang._errors import BackendUnavailable, LogError
from mianzhang.log.redis._errors import backend_errors


def subclasses(cls: type[BaseException]) -> set[type[BaseException]]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | subclasses(sub)
    return found


def make(cls: type[BaseException]) -> BaseException:
    for args in (("boom",), (), ("3999 127.0.0.1:6380",)):  # Ask/Moved parse "slot host:port"
        try:
            return cls(*args)
        except (TypeError, ValueError):
            continue
    raise AssertionError(f"cannot instantiate {cls}")


ROOTS: tuple[type[BaseException], ...] = (
    redis.exceptions.RedisError,
    redis.exceptions.RedisClusterException,
)
# the socket layer: what asyncio streams raise below redis-py
SOCKET = (OSError, TimeoutError, ConnectionRefusedError, ConnectionResetError, BrokenPipeError)
CLASSES = sorted(
    {*ROOTS, *SOCKET, *(sub for root in ROOTS for sub in subclasses(root))},
    key=lambda c: f"{c.__module__}.{c.__qualname__}",
)


def test_the_redis_error_tree_was_found() -> None:
    names = {c.__name__ for c in CLASSES}
    assert {"ConnectionError", "TimeoutError", "ResponseError", "BusyLoadingError"} <= names
    assert {"ReadOnlyError", "NoScriptError", "OutOfMemoryError", "MaxConnectionsError"} <= names
    assert len(CLASSES) > 30


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_every_redis_error_class_is_translated(cls: type[BaseException]) -> None:
    error = make(cls)
    with pytest.raises(BackendUnavailable) as info, backend_errors():
        raise error
    assert info.value.__cause__ is error
    assert isinstance(info.value, LogError)
    assert cls.__name__ in str(info.value)


def test_other_errors_pass_through() -> None:
    with pytest.raises(ValueError), backend_errors():
        raise ValueError("a bug, not an outage")
