"""What only the Redis chat store has: its key layout (one hash tag per chat), key expiry, and
an owner index that is read past chats that are gone."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from mianzhang import BackendUnavailable
from mianzhang.chats import Chat, RedisChatStore

pytestmark = pytest.mark.redis


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis.from_url(redis_url)
    try:
        yield c
    finally:
        await c.aclose()


async def test_every_key_of_a_chat_has_its_hash_tag_and_a_ttl(client: aioredis.Redis) -> None:
    store = RedisChatStore(client, prefix="t:", ttl=100)
    await store.create(Chat("abc", "api_key:alice"))
    keys = sorted(k.decode() for k in await client.keys("t:*"))
    assert keys == ["t:chat:{abc}", "t:chats:owner:{api_key:alice}"]
    for key in keys:
        assert 0 < await client.pttl(key) <= 100_000


async def test_a_listing_reads_past_chats_that_are_gone(client: aioredis.Redis) -> None:
    store = RedisChatStore(client, prefix="t:")
    for i in range(6):
        await store.create(Chat(f"c{i}", "o", created=100.0 + i))
    await client.delete("t:chat:{c5}", "t:chat:{c4}", "t:chat:{c3}")  # as if expired
    assert [c.id for c in await store.recent("o", limit=2)] == ["c2", "c1"]
    assert await client.zcard("t:chats:owner:{o}") == 3  # the dead entries were dropped


async def test_redis_errors_become_backend_unavailable() -> None:
    dead = aioredis.Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.5)
    store = RedisChatStore(dead)
    try:
        with pytest.raises(BackendUnavailable):
            await store.get("c1")
        with pytest.raises(BackendUnavailable):
            await store.create(Chat("c1", "o"))
        with pytest.raises(BackendUnavailable):
            await store.update("c1", title="x")
        with pytest.raises(BackendUnavailable):
            await store.recent("o")
    finally:
        await dead.aclose()
