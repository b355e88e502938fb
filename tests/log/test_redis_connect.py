"""``log/redis/_connect.py``: one URL selects one server, a Sentinel-managed master or a Redis
Cluster; the clients work against real servers and wait for a free connection."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError

from mianzhang.log.redis._connect import close, connect, is_cluster, parse_redis_url
from tests._support.procs import RedisClusterProcesses, RedisProcess, RedisSentinelProcesses
from tests._support.wait import eventually

pytestmark = pytest.mark.redis


@pytest.mark.parametrize(
    "url", ["redis://localhost:6379/2", "rediss://h", "unix:///tmp/redis.sock?db=1"]
)
def test_redis_and_unix_urls_name_one_server(url: str) -> None:
    parsed = parse_redis_url(url)
    assert (parsed.mode, parsed.url, parsed.nodes) == ("single", url, ())


def test_a_cluster_url_lists_seed_nodes_with_credentials_and_options() -> None:
    parsed = parse_redis_url(
        "redis+cluster://user:p%40ss@10.0.0.1:7000,10.0.0.2,[::1]:7002?socket_keepalive=true"
    )
    assert parsed.mode == "cluster"
    assert parsed.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7002))
    assert (parsed.options["username"], parsed.options["password"]) == ("user", "p@ss")
    assert parsed.options["socket_keepalive"] is True
    assert parse_redis_url("rediss+cluster://h:1").tls


def test_a_sentinel_url_names_sentinels_service_db_and_sentinel_credentials() -> None:
    parsed = parse_redis_url("redis+sentinel://:secret@s1,s2:26380/mymaster/3?sentinel_password=sp")
    assert parsed.mode == "sentinel"
    assert parsed.nodes == (("s1", 26379), ("s2", 26380))
    assert parsed.service == "mymaster"
    assert (parsed.options["password"], parsed.options["db"]) == ("secret", 3)
    assert parsed.sentinel_options == {"sentinel_password": "sp"}


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://s1:26379",  # no service
        "redis+cluster://h:7000/1",  # a cluster has db 0 only
        "redis+cluster://h:7000,,h2:7001",  # an empty node
        "redis+cluster://h:port",
        "http://h:6379",
    ],
)
def test_malformed_urls_are_rejected(url: str) -> None:
    with pytest.raises(ValueError):
        parse_redis_url(url)


async def test_each_form_connects_to_its_deployment(
    redis_server: RedisProcess,
    redis_cluster_server: RedisClusterProcesses,
    redis_sentinel_server: RedisSentinelProcesses,
) -> None:
    single = connect(redis_server.url, client_name="t-single")
    cluster = connect(redis_cluster_server.url)
    sentinel = connect(redis_sentinel_server.url)
    try:
        assert isinstance(single, Redis) and not is_cluster(single)
        assert isinstance(cluster, RedisCluster) and is_cluster(cluster)
        assert isinstance(sentinel, Redis)
        assert isinstance(sentinel.connection_pool, SentinelConnectionPool)
        for client in (single, cluster, sentinel):
            assert await client.set("k", "v") and await client.get("k") == "v"  # decoded
        assert await single.client_getname() == "t-single"
        role = await sentinel.execute_command("ROLE")
        assert role[0] == "master"
        assert int(redis_sentinel_server.master.port) == sentinel.connection_pool.master_address[1]
    finally:
        for client in (single, cluster, sentinel):
            await close(client)


async def test_commands_wait_for_a_free_connection_rather_than_fail(
    redis_deployment_url: str,
) -> None:
    url = redis_deployment_url
    client = connect(url, max_connections=1, pool_timeout=10)
    try:
        await client.delete("{c}:n")
        results = await asyncio.gather(*(client.incr("{c}:n") for _ in range(200)))
        assert sorted(results) == list(range(1, 201))
    finally:
        await close(client)


async def test_commands_give_up_after_pool_timeout(redis_deployment_url: str) -> None:
    url = redis_deployment_url
    client = connect(url, max_connections=1, pool_timeout=0.2)
    try:
        blocked = asyncio.ensure_future(client.blpop(["{c}:never"], timeout=2))
        await eventually(lambda: _pool_busy(client))  # the blocking pop holds the only one
        with pytest.raises(RedisConnectionError):
            await client.get("{c}:x")
        assert await blocked is None
    finally:
        await close(client)


def _pool_busy(client: Any) -> bool:
    if isinstance(client, RedisCluster):
        return bool(client._mz_slots.locked())
    return bool(client.connection_pool._in_use_connections)
