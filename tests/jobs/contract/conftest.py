"""One fixture, every backend: the job store contract runs unchanged on memory and on real
Redis: one server, a Redis Cluster and a Sentinel-managed master (as the event log's does,
``tests/log/contract``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from mianzhang.jobs import JobStore, MemoryJobStore
from tests._support.backends import store_factory

MakeStore = Callable[..., JobStore]


@pytest.fixture
async def make_store(backend_url: str | None) -> AsyncIterator[MakeStore]:
    """Build stores of the parametrised backend (``**options`` go to the constructor; the
    options both share: ``keep_finished``). Redis stores share one client (the server's
    connection factory) on the session's deployment, flushed first, closed at teardown."""
    from mianzhang.jobs._redis import RedisJobStore

    async with store_factory(backend_url, MemoryJobStore, RedisJobStore) as make:
        yield make


@pytest.fixture
def store(make_store: MakeStore) -> JobStore:
    return make_store()
