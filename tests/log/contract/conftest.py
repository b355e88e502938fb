"""One fixture, every backend: the contract suite runs unchanged on memory and on real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from mianzhang.log import EventLog, MemoryEventLog
from tests._support.procs import RedisProcess

MakeLog = Callable[..., Awaitable[EventLog]]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend_url(request: pytest.FixtureRequest) -> str | None:
    """``None`` for the memory backend, else the URL of the session's real redis-server."""
    if request.param == "memory":
        return None
    server: RedisProcess = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture
async def make_log(backend_url: str | None) -> AsyncIterator[MakeLog]:
    """Build logs of the parametrised backend (``**options`` go to the constructor); all are
    closed at teardown. Redis logs share the session redis-server, flushed first."""
    url = backend_url
    if url is not None:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(url)
        try:
            await client.flushall()
        finally:
            await client.aclose()
    made: list[Any] = []

    async def make(**options: Any) -> EventLog:
        if url is None:
            log: Any = MemoryEventLog(**options)
        else:
            from mianzhang.log import RedisEventLog

            options.setdefault("validate_interval", 0.5)
            log = RedisEventLog(url, **options)
        made.append(log)
        return log

    try:
        yield make
    finally:
        for log in made:
            await log.aclose()


@pytest.fixture
async def log(make_log: MakeLog) -> EventLog:
    return await make_log()
