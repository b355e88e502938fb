"""Shared fixtures. Real processes only: see ``tests/_support/procs.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests._support.procs import RedisProcess, redis_process


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisProcess]:
    """One redis-server for the session (tests that restart Redis start their own)."""
    with redis_process() as server:
        yield server


@pytest.fixture
async def redis_url(redis_server: RedisProcess) -> AsyncIterator[str]:
    """The session Redis, flushed before each test."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await client.flushall()
    finally:
        await client.aclose()
    yield redis_server.url
