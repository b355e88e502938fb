"""The one place where redis-py's errors become mianzhang's (the adapter boundary).

Every exception redis-py can raise (``redis.exceptions.RedisError`` and its subclasses, among
them what a cluster answers during a failover or a resharding: ``ClusterDownError``,
``TryAgainError``, ``MovedError``/``AskError`` beyond redis-py's redirects; the cluster-only
``RedisClusterException``; and ``OSError``/``TimeoutError`` from the socket layer)
becomes :class:`~mianzhang.BackendUnavailable`, chained with ``raise ... from exc`` so the cause
stays visible. Callers of the Redis backend therefore only ever catch ``LogError`` subclasses.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import RedisClusterException, RedisError

from ..._errors import BackendUnavailable

__all__ = ["REDIS_ERRORS", "backend_errors", "translate"]

REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, RedisClusterException, OSError)
"""What may escape redis-py (``TimeoutError`` and ``ConnectionError`` builtins are OSErrors)."""


def translate(exc: BaseException) -> BackendUnavailable:
    """The ``BackendUnavailable`` for one redis-py error (its ``__cause__`` is set by callers)."""
    return BackendUnavailable(f"redis: {type(exc).__name__}: {exc}")


@contextmanager
def backend_errors() -> Iterator[None]:
    """Translate redis-py errors raised inside the block (``raise ... from exc``)."""
    try:
        yield
    except REDIS_ERRORS as exc:
        raise translate(exc) from exc
