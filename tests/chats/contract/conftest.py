"""One fixture, every backend: the chat store contract runs unchanged on memory and on a real
redis-server (as the job store's does, ``tests/jobs/contract``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from mianzhang.chats import ChatStore, MemoryChatStore
from tests._support.procs import RedisProcess

MakeStore = Callable[..., ChatStore]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[MakeStore]:
    """Build stores of the parametrised backend (``**options``: ``ttl``). Redis stores share
    one client on the session redis-server, flushed first, closed at teardown."""
    if request.param == "memory":
        yield lambda **options: MemoryChatStore(**options)
        return
    import redis.asyncio as aioredis

    from mianzhang.chats import RedisChatStore

    server: RedisProcess = request.getfixturevalue("redis_server")
    client = aioredis.Redis.from_url(server.url)
    try:
        await client.flushall()

        def make(**options: Any) -> ChatStore:
            return RedisChatStore(client, **options)

        yield make
    finally:
        await client.aclose()


@pytest.fixture
def store(make_store: MakeStore) -> ChatStore:
    return make_store()
