"""What only the Redis chat store has, on every Redis deployment (one server, a Redis Cluster,
a Sentinel's master): its key layout and expiry, an owner index written apart from the chat
(another slot) and tolerant of lagging behind it, the per-owner bound, and on a cluster the
two keys of a chat on different masters with every operation working (nothing ``CROSSSLOT``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
from redis.asyncio.cluster import RedisCluster

from mianzhang import BackendUnavailable
from mianzhang.chats import Chat, RedisChatStore, Turn
from mianzhang.log.redis._connect import Client, close, connect
from tests._support.backends import flushed_redis
from tests._support.procs import RedisClusterProcesses

pytestmark = pytest.mark.redis

ANSWER = {"id": "a1", "role": "assistant", "parts": [{"type": "text", "text": "hello"}]}


def turn(stream: str) -> Turn:
    return Turn(stream, f"client-{stream}", time.time() + 60)


@pytest.fixture
async def client(redis_deployment_url: str) -> AsyncIterator[Client]:
    """A client (the server's factory) on the parametrised deployment, flushed first."""
    async with flushed_redis(redis_deployment_url, decode_responses=False) as c:
        yield c


async def listed(store: RedisChatStore, owner: str) -> list[str]:
    return [c.id for c in await store.recent(owner)]


async def test_both_keys_have_their_hash_tag_and_a_ttl(client: Client) -> None:
    store = RedisChatStore(client, prefix="t:", ttl=100)
    await store.create(Chat("abc", "api_key:alice"))
    assert (store.key("abc"), store.index("api_key:alice")) == (
        "t:chat:{abc}",
        "t:chats:owner:{api_key:alice}",
    )
    for key in ("t:chat:{abc}", "t:chats:owner:{api_key:alice}"):
        assert 0 < await client.pttl(key) <= 100_000
    await client.pexpire("t:chat:{abc}", 5_000)
    await client.pexpire("t:chats:owner:{api_key:alice}", 5_000)
    await store.begin("abc", turn("s1"), replaces=None)  # every write restarts both clocks
    for key in ("t:chat:{abc}", "t:chats:owner:{api_key:alice}"):
        assert 5_000 < await client.pttl(key) <= 100_000


async def test_a_listing_reads_past_chats_that_are_gone_and_prunes_them(client: Client) -> None:
    store = RedisChatStore(client, prefix="t:")
    for i in range(6):
        await store.create(Chat(f"c{i}", "o", created=100.0 + i))
    await client.delete("t:chat:{c5}", "t:chat:{c4}", "t:chat:{c3}")  # as if expired
    assert [c.id for c in await store.recent("o", limit=2)] == ["c2", "c1"]
    assert await client.zcard("t:chats:owner:{o}") == 3  # the dead entries were dropped


async def test_a_deleted_chat_left_in_the_index_is_not_listed(client: Client) -> None:
    store = RedisChatStore(client, prefix="t:")
    await store.create(Chat("c1", "alice", created=100.0))
    await store.create(Chat("c2", "alice", created=200.0))
    # delete's second step (the index entry) failed: only the chat is gone
    await client.delete("t:chat:{c1}")
    assert await store.create(Chat("c1", "bob", created=300.0))  # the id taken by another
    assert await listed(store, "alice") == ["c2"]
    assert await client.zscore("t:chats:owner:{alice}", "c1") is None  # repaired on read
    assert await listed(store, "bob") == ["c1"]


async def test_pruning_keeps_an_entry_indexed_again_meanwhile(client: Client) -> None:
    store = RedisChatStore(client, prefix="t:")
    await store.create(Chat("c1", "o", created=100.0))
    await store.create(Chat("c2", "o", created=100.0))
    # a listing saw c1 and c2 at 100.0 with no chat; c1 was re-created (re-indexed) since
    await client.zadd("t:chats:owner:{o}", {"c1": 150.0})
    assert await store.prune("o", {"c1": 100.0, "c2": 100.0}) == 1
    assert await client.zscore("t:chats:owner:{o}", "c1") == 150.0
    assert await client.zscore("t:chats:owner:{o}", "c2") is None


async def test_a_failed_index_write_leaves_the_chat_unlisted_until_its_next_write(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisChatStore(client, prefix="t:")
    await client.set("t:chats:owner:{o}", "not a sorted set")  # every index write fails
    with caplog.at_level(logging.WARNING, logger="mianzhang.chats"):
        assert await store.create(Chat("c1", "o", created=100.0))
    assert "not indexed" in caplog.text
    found = await store.get("c1")  # the chat's own write stands
    assert found is not None and found.owner == "o"
    await client.delete("t:chats:owner:{o}")  # the index's node is back, empty
    assert await listed(store, "o") == []  # missed until the chat's next write
    await store.begin("c1", turn("s1"), replaces=None)
    assert await listed(store, "o") == ["c1"]


async def test_the_index_holds_the_newest_max_per_owner(client: Client) -> None:
    store = RedisChatStore(client, prefix="t:", max_per_owner=3)
    for i in range(5):
        await store.create(Chat(f"c{i}", "o", created=100.0 + i))
    assert await client.zcard("t:chats:owner:{o}") == 3
    assert await listed(store, "o") == ["c4", "c3", "c2"]
    assert await store.get("c0") is not None  # unlisted, still readable by id
    await store.begin("c0", turn("s0"), replaces=None)  # activity lists it again
    assert await listed(store, "o") == ["c0", "c4", "c3"]


async def test_a_late_index_write_does_not_move_a_chat_back(client: Client) -> None:
    store = RedisChatStore(client, prefix="t:")
    await store.create(Chat("c1", "o", created=100.0))
    await store.create(Chat("c2", "o", created=200.0))
    await store.begin("c1", turn("s1"), replaces=None)  # c1 active now: first
    stale = Chat("c1", "o", created=100.0)  # an index write of an older state, arriving late
    await store._indexed(stale)
    assert await listed(store, "o") == ["c1", "c2"]


async def test_a_chat_stored_without_a_revision_is_still_changed(client: Client) -> None:
    store = RedisChatStore(client, prefix="t:")
    meta = Chat("old", "o", created=100.0).to_json()
    del meta["messages"]
    await client.hset("t:chat:{old}", mapping={"meta": orjson.dumps(meta), "messages": b"[]"})
    begun = await store.begin("old", turn("s1"), replaces=None)
    assert begun is not None and begun.active_stream == "s1"
    assert await client.hget("t:chat:{old}", "rev") == b"1"


async def test_concurrent_writers_of_one_chat_lose_nothing(client: Client) -> None:
    store = RedisChatStore(client, prefix="t:")
    await store.create(Chat("c1", "o"))
    await store.begin("c1", turn("s1"), replaces=None)
    answers = [{**ANSWER, "id": f"a{i}"} for i in range(6)]
    # each finish reads, changes and writes back the chat: a lost update would drop one
    await asyncio.gather(*(store.finish("c1", "s1", answer) for answer in answers))
    found = await store.get("c1")
    assert found is not None
    assert sorted(m["id"] for m in found.messages) == [f"a{i}" for i in range(6)]


def _spread(client: RedisCluster, store: RedisChatStore, owner: str) -> list[str]:
    """Four chat ids whose keys are, in the client's slot map, on two masters other than the
    one of the owner's index."""
    index_master = client.get_node_from_key(store.index(owner)).port
    by_master: dict[int, list[str]] = {}
    for i in range(256):
        port = client.get_node_from_key(store.key(f"c{i}")).port
        if port != index_master:
            by_master.setdefault(port, []).append(f"c{i}")
    first, second = list(by_master.values())[:2]
    return [*first[:2], *second[:2]]


async def test_on_a_cluster_a_chat_and_its_index_are_on_different_masters(
    redis_cluster_server: RedisClusterProcesses,
) -> None:
    client = connect(redis_cluster_server.url, decode_responses=False)
    assert isinstance(client, RedisCluster)
    owner = "api_key:alice"
    try:
        await client.flushall()
        store = RedisChatStore(client, prefix="x:")
        await client.initialize()
        ids = _spread(client, store, owner)
        masters = {redis_cluster_server.master_of(store.key(i)).port for i in ids}
        assert len(masters) == 2  # checked on the nodes themselves, not the client's map
        assert redis_cluster_server.master_of(store.index(owner)).port not in masters
        # every operation, each chat on another master than the index: none may be refused
        for n, chat_id in enumerate(ids):
            assert await store.create(Chat(chat_id, owner, created=100.0 + n))
        for chat_id in ids:
            assert await store.begin(chat_id, turn(f"s-{chat_id}"), replaces=None) is not None
        assert await store.finish(ids[0], f"s-{ids[0]}", ANSWER) is not None
        assert await store.update(ids[1], title="renamed") is not None
        assert await listed(store, owner) == [ids[0], *reversed(ids[1:])]
        assert await store.delete(ids[2])
        assert await listed(store, owner) == [ids[0], ids[3], ids[1]]
        assert await client.zcard(store.index(owner)) == 3
    finally:
        await close(client)


async def test_redis_errors_become_backend_unavailable() -> None:
    dead = connect("redis://127.0.0.1:9/0", decode_responses=False, connect_timeout=0.5)
    store = RedisChatStore(dead)
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: store.get("c1"),
        lambda: store.create(Chat("c1", "o")),
        lambda: store.update("c1", title="x"),
        lambda: store.recent("o"),
        lambda: store.delete("c1"),
    ]
    try:
        for call in calls:
            with pytest.raises(BackendUnavailable):
                await call()
    finally:
        await close(dead)
