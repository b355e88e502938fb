"""One fixture, every backend: the chat store contract runs unchanged on memory and on real
Redis: one server, a Redis Cluster and a Sentinel-managed master (as the job store's does,
``tests/jobs/contract``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from mianzhang.chats import ChatStore, MemoryChatStore
from tests._support.backends import store_factory

MakeStore = Callable[..., ChatStore]


@pytest.fixture
async def make_store(backend_url: str | None) -> AsyncIterator[MakeStore]:
    """Build stores of the parametrised backend (``**options``: ``ttl``). Redis stores share
    one client (the server's connection factory) on the session's deployment, flushed first,
    closed at teardown."""
    from mianzhang.chats import RedisChatStore

    async with store_factory(backend_url, MemoryChatStore, RedisChatStore) as make:
        yield make


@pytest.fixture
def store(make_store: MakeStore) -> ChatStore:
    return make_store()
