"""Opening Redis from one URL: one server, the master a Sentinel names, or a Redis Cluster.

URL forms (``MIANZHANG_REDIS_URL``)::

    redis://[user:pass@]host[:port][/db]        one server (rediss://: TLS;
    unix://[user:pass@]/path/to/redis.sock[?db=N]   unix socket)
    redis+cluster://[user:pass@]host:port[,host:port...]
                                                a Redis Cluster, from seed nodes (any
                                                masters or replicas; the rest is discovered);
                                                rediss+cluster://: TLS
    redis+sentinel://[user:pass@]host:port[,host:port...]/service[/db]
                                                the master of ``service`` as the Sentinels
                                                report it (port 26379 by default);
                                                rediss+sentinel://: TLS to the master and to
                                                the Sentinels

User and password authenticate to Redis (the cluster's nodes, the Sentinel's master); the
Sentinels themselves take ``?sentinel_username=...&sentinel_password=...``. Other query
parameters are redis-py's ``from_url`` ones (``?ssl_cert_reqs=none``, ``?socket_keepalive=...``)
and apply to every connection.

What :func:`connect` returns: a ``redis.asyncio.Redis`` (one server, Sentinel) or a
``redis.asyncio.cluster.RedisCluster``, both with redis-py's command API, connecting lazily.
Commands share at most ``max_connections`` connections (per node on a cluster) and wait up to
``pool_timeout`` seconds for a free one. One server and Sentinel: redis-py's own retries are
off (callers decide what to retry); a Sentinel client asks the Sentinels for the master on
every new connection and drops connections to a demoted master. Cluster: the client follows
``MOVED``/``ASK`` and refreshes its slot map on errors (redis-py's cluster retries), which is
part of talking to a cluster. Close with :func:`close` (also the Sentinel connections).

Adopting it elsewhere (jobs, rate limits, channel presence): replace
``redis.asyncio.Redis.from_url(url)`` by ``connect(url, client_name=...)`` and ``aclose()`` by
``await close(client)``; then, for a cluster, keep every multi-key command, transaction and
script on keys of one hash tag (``{...}``), never block on several keys of different slots
(the log's watcher shows how: sharded pub/sub wake-ups, per-slot reads), use ``SPUBLISH`` /
``SSUBSCRIBE`` on a channel under the same hash tag rather than ``PUBLISH``, and translate
errors with ``_errors.backend_errors`` (``RedisClusterException`` included).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

__all__ = ["Client", "RedisUrl", "close", "connect", "is_cluster", "parse_redis_url"]

Client = aioredis.Redis | RedisCluster
Mode = Literal["single", "cluster", "sentinel"]

_SCHEMES: dict[str, tuple[Mode, bool]] = {
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
}
_SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")


@dataclass(frozen=True)
class RedisUrl:
    """A parsed Redis URL: the ``mode``, the ``nodes`` (cluster seeds or Sentinels), the
    Sentinel ``service``, and connection options as redis-py's ``parse_url`` gives them."""

    mode: Mode
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    service: str | None = None
    tls: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    sentinel_options: dict[str, Any] = field(default_factory=dict)


def _nodes(netloc: str, default_port: int) -> tuple[tuple[str, int], ...]:
    """``host[:port]`` items separated by commas (IPv6 hosts in brackets)."""
    nodes = []
    for item in netloc.rpartition("@")[2].split(","):
        parts = urlsplit("//" + item.strip())
        if not parts.hostname:
            raise ValueError(f"a Redis URL node needs a host, not {item!r}")
        nodes.append((parts.hostname, parts.port or default_port))
    return tuple(nodes)


def parse_redis_url(url: str) -> RedisUrl:
    """Parse one of the URL forms in the module docstring (``ValueError`` if malformed)."""
    scheme = url.partition("://")[0].lower()
    if scheme not in _SCHEMES:
        parse_url(url)  # redis-py validates redis://, rediss://, unix://
        return RedisUrl("single", url)
    mode, tls = _SCHEMES[scheme]
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    sentinel_options = {k: query.pop(k) for k in _SENTINEL_OPTIONS if k in query}
    path = [unquote(p) for p in parts.path.split("/") if p]
    service = None
    if mode == "sentinel":
        if not path:
            raise ValueError("a redis+sentinel:// URL needs the service name: .../service")
        service, path = path[0], path[1:]
    elif path and path != ["0"]:
        raise ValueError("a Redis Cluster has database 0 only")
    nodes = _nodes(parts.netloc, 26379 if mode == "sentinel" else 6379)
    userinfo = parts.netloc.rpartition("@")[0]
    auth = f"{userinfo}@" if userinfo else ""
    db = f"/{path[0]}" if path else ""
    single = f"redis://{auth}localhost{db}" + (f"?{urlencode(query)}" if query else "")
    options: dict[str, Any] = dict(parse_url(single))
    options.pop("host", None)
    return RedisUrl(mode, url, nodes, service, tls, options, sentinel_options)


class _BlockingSentinelPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """A Sentinel-managed pool that waits up to ``timeout`` for a free connection."""


class _BoundedCluster(RedisCluster):
    """A cluster client whose commands wait for one of ``commands`` slots (up to
    ``pool_timeout``) instead of failing at once when a node's pool is exhausted (redis-py's
    cluster nodes raise ``MaxConnectionsError`` rather than wait)."""

    def __init__(self, *args: Any, commands: int, pool_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._mz_slots = asyncio.Semaphore(commands)
        self._mz_pool_timeout = pool_timeout

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            async with asyncio.timeout(self._mz_pool_timeout):
                await self._mz_slots.acquire()
        except TimeoutError:
            raise RedisConnectionError("no connection available (pool_timeout)") from None
        try:
            return await super().execute_command(*args, **kwargs)
        finally:
            self._mz_slots.release()


def connect(
    url: str,
    *,
    max_connections: int = 32,
    pool_timeout: float = 10.0,
    connect_timeout: float = 2.0,
    client_name: str | None = None,
    decode_responses: bool = True,
) -> Client:
    """A client for ``url`` (see the module docstring). Connects lazily; never blocks.

    Commands have no socket timeout (bound them with ``asyncio.timeout``: redis-py's own
    timeout uses ``asyncio.wait_for``, which on Python 3.11 can swallow a cancellation).
    RESP2 replies, ``decode_responses`` as given."""
    target = parse_redis_url(url)
    common: dict[str, Any] = {
        "decode_responses": decode_responses,
        "protocol": 2,
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": None,
        "client_name": client_name,
    }
    if target.mode == "cluster":
        return _cluster(target, common, max_connections, pool_timeout)
    common["retry"] = Retry(NoBackoff(), 0)
    if target.mode == "sentinel":
        return _sentinel_master(target, common, max_connections, pool_timeout)
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=pool_timeout, **common
    )
    return aioredis.Redis(connection_pool=pool)


def _cluster(
    target: RedisUrl, common: dict[str, Any], max_connections: int, pool_timeout: float
) -> RedisCluster:
    options = {**target.options, **common}
    options.pop("connection_class", None)
    options.pop("db", None)
    return _BoundedCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
        require_full_coverage=False,  # slots of healthy masters keep working in a failover
        # commands wait for one of max_connections (see _BoundedCluster); pipelines and slot
        # map refreshes take a few connections more
        max_connections=max_connections + 16,
        commands=max_connections,
        pool_timeout=pool_timeout,
        ssl=target.tls,
        **options,
    )


def _sentinel_master(
    target: RedisUrl, common: dict[str, Any], max_connections: int, pool_timeout: float
) -> aioredis.Redis:
    sentinel_kwargs = {
        "socket_connect_timeout": common["socket_connect_timeout"],
        "socket_timeout": common["socket_connect_timeout"],  # Sentinel queries are short
        "decode_responses": True,
        "ssl": target.tls,
        "username": target.sentinel_options.get("sentinel_username"),
        "password": target.sentinel_options.get("sentinel_password"),
    }
    options: dict[str, Any] = {**target.options, **common}
    options.pop("connection_class", None)
    options.update(ssl=target.tls, max_connections=max_connections, timeout=pool_timeout)
    sentinel = Sentinel(list(target.nodes), sentinel_kwargs=sentinel_kwargs)
    client: aioredis.Redis = sentinel.master_for(
        target.service or "", connection_pool_class=_BlockingSentinelPool, **options
    )
    return client


def is_cluster(client: Client) -> bool:
    return isinstance(client, RedisCluster)


async def close(client: Client) -> None:
    """Close ``client``, its connections, and the Sentinel connections behind it."""
    await client.aclose()
    if isinstance(client, RedisCluster):
        return
    pool = client.connection_pool
    await pool.disconnect()
    if isinstance(pool, SentinelConnectionPool):
        for sentinel in pool.sentinel_manager.sentinels:
            await sentinel.aclose()
