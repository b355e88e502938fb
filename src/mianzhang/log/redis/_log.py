"""``RedisEventLog``: the stream operations, and ``follow``'s set-up (see the package docstring
for the guarantees; one follower's algorithm is in ``_follower.py``)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncGenerator

from ..._errors import LogError, StreamClosedError, StreamNotFound
from ..._tasks import AsyncResource
from .._common import (
    DEFAULT_IDEMPOTENCY_TTL,
    DEFAULT_MAX_EVENTS,
    DEFAULT_TTL_AFTER_CLOSE,
    LogStatistics,
    check_limit,
    check_retention,
    check_stream_name,
    final_state,
    key_ttl,
    new_epoch,
    resolve_after,
)
from .._fanout import Push
from .._protocol import LogEvent, Reset, StreamInfo, StreamState, format_id
from ._connect import Client, close, connect, is_cluster
from ._errors import backend_errors
from ._first_reads import FirstReads
from ._follower import FollowContext, FollowPolicy, follow
from ._keys import StreamKeys
from ._leases import LeaseMethods, RedisLeases
from ._presence import Presence
from ._retry import Backoff
from ._scripts import Scripts
from ._snapshot import Snapshot, parse_snapshot, position, stream_info
from ._watch import Watcher
from ._watch_options import WatchOptions
from ._watch_shards import ShardWatcher
from ._watch_xread import XReadWatcher

__all__ = ["RedisEventLog"]


def _check_sizes(
    max_events: int | None,
    ttl_after_close: float | None,
    max_connections: int,
    cache_size: int,
    read_batch: int,
) -> None:
    check_retention(max_events, ttl_after_close)
    if max_connections < 1 or cache_size < 1 or read_batch < 1:
        raise ValueError("max_connections, cache_size and read_batch must be >= 1")


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, not {value!r}")
    return value


class RedisEventLog(LeaseMethods, AsyncResource):
    """:class:`~mianzhang.log.EventLog` on Redis Streams, shared by every process using the same
    Redis and ``prefix`` (see the package docstring for guarantees).

    ``max_events`` / ``ttl_after_close``: defaults for streams created without their own
    (``None``: unbounded / kept forever). Keys live under ``prefix`` with the stream name as
    hash tag. Use as ``async with RedisEventLog(url)`` or call :meth:`aclose`.

    ``url``: one server, a Redis Cluster or a Sentinel-managed master (see ``_connect.py``).
    Connections: a pool of at most ``max_connections`` for commands (per node on a cluster;
    waiting up to ``pool_timeout`` for a free one) plus the watcher's: one dedicated connection
    for the shared blocking read (``block_timeout`` seconds per ``XREAD``), or on a cluster one
    sharded pub/sub connection per master. Every command runs under ``timeout`` seconds
    (``connect_timeout`` to connect). Followers: ``reconnect_timeout`` (give up after that
    long without Redis), ``backoff_initial``/``backoff_max`` (retry delays), ``missing_timeout``
    (wait for a vanished stream), ``validate_interval`` (how often watched epochs are checked,
    which bounds how late a ``FLUSHALL`` is noticed), ``cache_size`` and ``read_batch``
    (memory, see the package docstring), ``presence_ttl`` (how long a dead process's readers
    still count), ``idempotency_ttl`` (default for ``append(idempotency_key=...)``).
    Producer leases (``_leases.py``): a followed stream idle for ``lease_idle`` seconds has
    its producer's lease checked, at most every ``lease_check`` seconds (``_lease_probe.py``);
    set ``lease_idle`` to the producers' lease ttl or less.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "mz:",
        max_events: int | None = DEFAULT_MAX_EVENTS,
        ttl_after_close: float | None = DEFAULT_TTL_AFTER_CLOSE,
        max_connections: int = 32,
        timeout: float = 5.0,
        connect_timeout: float = 2.0,
        pool_timeout: float = 10.0,
        block_timeout: float = 5.0,
        validate_interval: float = 5.0,
        reconnect_timeout: float = 30.0,
        backoff_initial: float = 0.05,
        backoff_max: float = 2.0,
        missing_timeout: float = 30.0,
        presence_ttl: float = 15.0,
        cache_size: int = 1024,
        read_batch: int = 100,
        idempotency_ttl: float = DEFAULT_IDEMPOTENCY_TTL,
        lease_idle: float = 5.0,
        lease_check: float = 0.25,
    ) -> None:
        _check_sizes(max_events, ttl_after_close, max_connections, cache_size, read_batch)
        self._idempotency_ttl = _positive("idempotency_ttl", idempotency_ttl)
        self._prefix = prefix
        self._max_events = max_events
        self._ttl_after_close = ttl_after_close
        self._timeout = timeout
        self._backoff = Backoff(backoff_initial, backoff_max)
        self._policy = FollowPolicy(read_batch, reconnect_timeout, missing_timeout, self._backoff)
        self._instance = secrets.token_hex(8)
        self._closed = False
        name = f"mz-log:{self._instance}"
        self._redis = connect(url, max_connections=max_connections, pool_timeout=pool_timeout,
                              connect_timeout=connect_timeout, client_name=name)  # fmt: skip
        self._cluster = is_cluster(self._redis)
        self._blocking: Client | None = None
        self._scripts = Scripts.register(self._redis)
        self._first_reads = FirstReads(self._read_first)
        self._watcher = self._open_watcher(
            url, connect_timeout, block_timeout, cache_size, validate_interval, reconnect_timeout
        )
        self._presence = Presence(
            self._redis, self._instance, self._keys, presence_ttl, self._backoff, timeout
        )
        self._leases = self._open_leases(lease_idle, lease_check)

    def _open_leases(self, idle: float, interval: float) -> RedisLeases:
        """The lease operations, and the watcher's check of idle streams' leases."""
        leases = RedisLeases(
            self._redis,
            keys=self._keys,
            wake=self._wake,
            index=f"{self._prefix}leases",
            timeout=self._timeout,
        )
        self._watcher.enable_lease_probe(leases.check_many, idle=idle, interval=interval)
        return leases

    def _open_watcher(
        self,
        url: str,
        connect_timeout: float,
        block_timeout: float,
        cache_size: int,
        validate_interval: float,
        reconnect_timeout: float,
    ) -> Watcher:
        """The shared reader: sharded pub/sub on a cluster, else one blocking ``XREAD`` on a
        dedicated connection (opened here, lazily)."""
        common: WatchOptions = {
            "timeout": self._timeout,
            "cache_size": cache_size,
            "validate_interval": validate_interval,
            "reconnect_timeout": reconnect_timeout,
            "backoff": self._backoff,
        }
        name = f"mz-watch:{self._instance}"
        if self._cluster:
            return ShardWatcher(cluster=self._redis, client_name=name, **common)
        self._blocking = connect(
            url, max_connections=1, connect_timeout=connect_timeout, client_name=name
        )
        return XReadWatcher(
            commands=self._redis,
            blocking=self._blocking,
            control_key=f"{self._prefix}ctl:{self._instance}",
            block_ms=max(1, int(block_timeout * 1000)),
            **common,
        )

    @property
    def instance(self) -> str:
        """This instance's id (in presence entries and in ``CLIENT LIST`` names)."""
        return self._instance

    def statistics(self) -> LogStatistics:
        """Streams watched by this instance's shared read, events in its cache, local
        followers."""
        return self._watcher.statistics()

    # -- internals ------------------------------------------------------------------------
    def _keys(self, stream: str) -> StreamKeys:
        return StreamKeys.of(self._prefix, stream)

    def _check_open(self) -> None:
        if self._closed:
            raise LogError("the event log is closed")

    def _is_closed(self) -> bool:
        return self._closed

    def _wake(self, keys: StreamKeys) -> str:
        """The channel appends and closes publish to (a cluster's watcher listens there)."""
        return keys.wake if self._cluster else ""

    def _retention_args(self) -> list[str]:
        return [
            new_epoch(),
            repr(time.time()),
            "" if self._max_events is None else str(self._max_events),
            "" if self._ttl_after_close is None else repr(float(self._ttl_after_close)),
        ]

    async def _snapshot(
        self, keys: StreamKeys, epoch: str, after: int, count: int
    ) -> Snapshot | None:
        """Meta + up to ``count`` events after seq ``after`` (if ``epoch`` is current, else from
        the oldest), atomically. ``None`` if the stream does not exist. Raises redis errors."""
        async with asyncio.timeout(self._timeout):
            raw = await self._scripts.read(keys=[keys.meta, keys.log], args=[epoch, after, count])
        return None if raw is None else parse_snapshot(raw)

    async def _read_first(
        self, keys: StreamKeys, epoch: str, after: int, count: int
    ) -> Snapshot | None:
        """A follower's first read (shared by ``_first_reads``): :meth:`_snapshot`."""
        return await self._snapshot(keys, epoch, after, count)

    # -- EventLog -------------------------------------------------------------------------
    async def create(
        self,
        stream: str,
        *,
        max_events: int | None = None,
        ttl_after_close: float | None = None,
        meta: dict[str, str] | None = None,
    ) -> StreamInfo:
        """Create ``stream`` if missing (``None`` retention: this log's defaults); return its
        info either way. An existing stream keeps its own retention and meta."""
        self._check_open()
        check_stream_name(stream)
        check_retention(max_events, ttl_after_close)
        keys = self._keys(stream)
        args = self._retention_args()
        if max_events is not None:
            args[2] = str(max_events)
        if ttl_after_close is not None:
            args[3] = repr(float(ttl_after_close))
        for key, value in (meta or {}).items():
            args += [key, value]
        with backend_errors():
            async with asyncio.timeout(self._timeout):
                flat, length = await self._scripts.create(keys=[keys.meta, keys.log], args=args)
        return stream_info(stream, dict(zip(flat[::2], flat[1::2], strict=True)), int(length))

    async def append(
        self,
        stream: str,
        data: str,
        *,
        event: str | None = None,
        idempotency_key: str | None = None,
        idempotency_ttl: float | None = None,
    ) -> str:
        """Append one event atomically and return its id (creating the stream with this log's
        default retention if missing). A repeated ``idempotency_key`` returns the first id
        (see :class:`~mianzhang.log.EventLog`), checked in the same atomic step. Raises
        ``StreamClosedError``, ``BackendUnavailable``."""
        self._check_open()
        check_stream_name(stream)
        keys = self._keys(stream)
        args = self._retention_args()
        args += [data, "0", ""] if event is None else [data, "1", event]
        script_keys = [keys.meta, keys.log]
        if idempotency_key is not None:
            ttl = key_ttl(idempotency_ttl, self._idempotency_ttl)
            script_keys.append(keys.idempotency(idempotency_key))
            args.append(str(max(1, int(ttl * 1000))))
        else:
            args.append("")
        args.append(self._wake(keys))
        with backend_errors():
            async with asyncio.timeout(self._timeout):
                reply = await self._scripts.append(keys=script_keys, args=args)
        if reply is None:
            raise StreamClosedError(stream)
        return format_id(reply[0], int(reply[1]))

    async def read(
        self, stream: str, after: str | None = None, *, limit: int = 1000
    ) -> tuple[Reset | None, list[LogEvent]]:
        """Up to ``limit`` retained events after ``after``; raises ``StreamNotFound``."""
        self._check_open()
        check_limit(limit)
        epoch, seq = position(after)
        with backend_errors():
            snap = await self._snapshot(self._keys(stream), epoch, seq, limit)
        if snap is None:
            raise StreamNotFound(stream)
        reset, start = resolve_after(after, epoch=snap.epoch, first=snap.first, last=snap.last)
        return reset, [e for e in snap.events if e.seq >= start][:limit]

    def follow(
        self, stream: str, after: str | None = None, *, push: Push | None = None
    ) -> AsyncGenerator[LogEvent | Reset, None]:
        """Replay after ``after``, then live events, until the stream is closed (resets and
        failures: see ``_follower.py``). The first read fails fast (``StreamNotFound``,
        ``BackendUnavailable``); afterwards Redis outages are retried. Counts in
        :meth:`readers` from the first ``__anext__`` until the iterator is closed; its watch
        is detached in ``finally`` (also on cancellation). ``push``: see ``log._fanout``."""
        ctx = FollowContext(
            read=self._snapshot,
            first_read=self._first_reads.read,
            watcher=self._watcher,
            presence=self._presence,
            policy=self._policy,
            is_closed=self._is_closed,
        )
        return follow(ctx, stream, self._keys(stream), after, push)

    async def close(self, stream: str, *, state: StreamState = StreamState.CLOSED) -> None:
        """Mark ``stream`` finished, drop its lease and wake followers (end marker); its keys
        expire ``ttl_after_close`` seconds later. Idempotent (the first final state is
        kept)."""
        self._check_open()
        state = final_state(state)
        keys = self._keys(stream)
        args = [state.value, repr(time.time()), new_epoch(), self._wake(keys)]
        with backend_errors():
            async with asyncio.timeout(self._timeout):
                result = await self._scripts.close(
                    keys=[keys.meta, keys.log, keys.lease], args=args
                )
        if result is None:
            raise StreamNotFound(stream)

    async def info(self, stream: str) -> StreamInfo | None:
        self._check_open()
        keys = self._keys(stream)
        with backend_errors():
            async with asyncio.timeout(self._timeout):
                flat, length = await self._scripts.info(keys=[keys.meta, keys.log])
        if not flat:
            return None
        return stream_info(stream, dict(zip(flat[::2], flat[1::2], strict=True)), int(length))

    async def readers(self, stream: str) -> int:
        """Open ``follow`` iterators on ``stream`` across every instance (this instance's
        pending changes are published first)."""
        self._check_open()
        keys = self._keys(stream)
        with backend_errors():
            async with asyncio.timeout(self._timeout):
                await self._presence.flush()
                counts = await self._scripts.readers(keys=[keys.readers, keys.reader_counts])
                return int(counts)

    async def aclose(self) -> None:
        """Stop the watcher and presence tasks (followers raise ``LogError``), withdraw this
        instance's presence, close connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._first_reads.aclose()
            await self._watcher.aclose()
            await self._presence.aclose()
        finally:
            await close(self._redis)
            if self._blocking is not None:
                await close(self._blocking)
