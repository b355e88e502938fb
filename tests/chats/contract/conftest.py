"""One fixture, every backend: the chat store contract runs unchanged on memory and on real
Redis: one server, a Redis Cluster and a Sentinel-managed master (as the job store's does,
``tests/jobs/contract``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from mianzhang.chats import ChatStore, MemoryChatStore

MakeStore = Callable[..., ChatStore]

_SERVERS = {
    "redis": "redis_server",
    "redis-cluster": "redis_cluster_server",
    "redis-sentinel": "redis_sentinel_server",
}


@pytest.fixture(
    params=["memory", *(pytest.param(name, marks=pytest.mark.redis) for name in _SERVERS)]
)
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[MakeStore]:
    """Build stores of the parametrised backend (``**options``: ``ttl``). Redis stores share
    one client (the server's connection factory) on the session's deployment, flushed first,
    closed at teardown."""
    if request.param == "memory":
        yield lambda **options: MemoryChatStore(**options)
        return
    from mianzhang.chats import RedisChatStore
    from mianzhang.log.redis._connect import close, connect

    server = request.getfixturevalue(_SERVERS[request.param])
    client = connect(str(server.url), decode_responses=False)
    try:
        await client.flushall()

        def make(**options: Any) -> ChatStore:
            return RedisChatStore(client, **options)

        yield make
    finally:
        await close(client)


@pytest.fixture
def store(make_store: MakeStore) -> ChatStore:
    return make_store()
