"""Clients on the session's Redis deployments for backend tests and contract suites."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from mianzhang.log.redis._connect import Client, close, connect

__all__ = ["flushed_redis", "store_factory"]

T = TypeVar("T")


@contextlib.asynccontextmanager
async def flushed_redis(url: str, **options: Any) -> AsyncIterator[Client]:
    """A client built as the server builds it (one server, a cluster or a Sentinel's master,
    from the URL's scheme), with every master flushed first; closed on exit."""
    client = connect(url, **options)
    try:
        await client.flushall()  # on a cluster: every master
        yield client
    finally:
        await close(client)


@contextlib.asynccontextmanager
async def store_factory(
    backend_url: str | None, memory: Callable[..., T], redis: Callable[..., T]
) -> AsyncIterator[Callable[..., T]]:
    """A store builder for a contract suite's parametrised backend: ``memory(**options)`` when
    ``backend_url`` is ``None``, else ``redis(client, **options)`` where every store shares one
    client on that deployment (bytes replies), flushed first and closed on exit."""
    if backend_url is None:
        yield memory
        return
    async with flushed_redis(backend_url, decode_responses=False) as client:

        def make(**options: Any) -> T:
            return redis(client, **options)

        yield make
