"""One fixture, every backend: the job store contract runs unchanged on memory and on real
Redis: one server, a Redis Cluster and a Sentinel-managed master (as the event log's does,
``tests/log/contract``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from mianzhang.jobs import JobStore, MemoryJobStore

MakeStore = Callable[..., JobStore]

_SERVERS = {
    "redis": "redis_server",
    "redis-cluster": "redis_cluster_server",
    "redis-sentinel": "redis_sentinel_server",
}


@pytest.fixture(
    params=["memory", *(pytest.param(name, marks=pytest.mark.redis) for name in _SERVERS)]
)
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[MakeStore]:
    """Build stores of the parametrised backend (``**options`` go to the constructor; the
    options both share: ``keep_finished``). Redis stores share one client (the server's
    connection factory) on the session's deployment, flushed first, closed at teardown."""
    if request.param == "memory":
        yield lambda **options: MemoryJobStore(**options)
        return
    from mianzhang.jobs._redis import RedisJobStore
    from mianzhang.log.redis._connect import close, connect

    server = request.getfixturevalue(_SERVERS[request.param])
    client = connect(str(server.url), decode_responses=False)
    try:
        await client.flushall()

        def make(**options: Any) -> JobStore:
            return RedisJobStore(client, **options)

        yield make
    finally:
        await close(client)


@pytest.fixture
def store(make_store: MakeStore) -> JobStore:
    return make_store()
