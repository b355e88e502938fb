"""One fixture, every backend: the contract suite runs unchanged on memory and on real Redis:
one server, a Redis Cluster (3 masters, 3 replicas) and a Sentinel-managed master."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from mianzhang.log import EventLog, MemoryEventLog

MakeLog = Callable[..., Awaitable[EventLog]]

# the session fixture (tests/conftest.py) holding each Redis deployment
_SERVERS = {
    "redis": "redis_server",
    "redis-cluster": "redis_cluster_server",
    "redis-sentinel": "redis_sentinel_server",
}


@pytest.fixture(
    params=["memory", *(pytest.param(name, marks=pytest.mark.redis) for name in _SERVERS)]
)
def backend_url(request: pytest.FixtureRequest) -> str | None:
    """``None`` for the memory backend, else the URL of one of the session's Redis
    deployments (``redis://``, ``redis+cluster://``, ``redis+sentinel://``)."""
    if request.param == "memory":
        return None
    server = request.getfixturevalue(_SERVERS[request.param])
    return str(server.url)


@pytest.fixture
async def make_log(backend_url: str | None) -> AsyncIterator[MakeLog]:
    """Build logs of the parametrised backend (``**options`` go to the constructor); all are
    closed at teardown. Redis logs share the session redis-server, flushed first."""
    url = backend_url
    if url is not None:
        from mianzhang.log.redis._connect import close, connect

        client = connect(url)
        try:
            await client.flushall()  # on a cluster: every master
        finally:
            await close(client)
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
