"""One fixture, every backend: the job store contract runs unchanged on memory and on a real
redis-server (as the event log's does, ``tests/log/contract``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from mianzhang.jobs import JobStore, MemoryJobStore
from tests._support.procs import RedisProcess

MakeStore = Callable[..., JobStore]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[MakeStore]:
    """Build stores of the parametrised backend (``**options`` go to the constructor; the
    options both share: ``keep_finished``). Redis stores share one client on the session
    redis-server, flushed first, closed at teardown."""
    if request.param == "memory":
        yield lambda **options: MemoryJobStore(**options)
        return
    import redis.asyncio as aioredis

    from mianzhang.jobs._redis import RedisJobStore

    server: RedisProcess = request.getfixturevalue("redis_server")
    client = aioredis.Redis.from_url(server.url)
    try:
        await client.flushall()

        def make(**options: Any) -> JobStore:
            return RedisJobStore(client, **options)

        yield make
    finally:
        await client.aclose()


@pytest.fixture
def store(make_store: MakeStore) -> JobStore:
    return make_store()
