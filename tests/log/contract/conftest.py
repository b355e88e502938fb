"""One fixture, every backend: the contract suite runs unchanged on memory and on real Redis:
one server, a Redis Cluster (3 masters, 3 replicas) and a Sentinel-managed master."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from mianzhang.log import EventLog, MemoryEventLog
from tests._support.backends import flushed_redis

MakeLog = Callable[..., Awaitable[EventLog]]


@pytest.fixture
async def make_log(backend_url: str | None) -> AsyncIterator[MakeLog]:
    """Build logs of the parametrised backend (``**options`` go to the constructor); all are
    closed at teardown. Redis logs share the session redis-server, flushed first."""
    url = backend_url  # the parameter: ``tests/conftest.py``
    if url is not None:
        async with flushed_redis(url):
            pass
    made: list[Any] = []

    async def make(**options: Any) -> EventLog:
        if url is None:
            log: Any = MemoryEventLog(**options)
        else:
            from mianzhang.log import RedisEventLog

            options.setdefault("validate_interval", 0.5)
            # followers check an idle stream's producer lease soon (the leases' contract)
            options.setdefault("lease_idle", 0.2)
            options.setdefault("lease_check", 0.05)
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
