"""The Redis event log: Redis Streams shared by every process, resumable across restarts.

Needs the ``redis`` extra (``pip install 'mianzhang[redis]'``) and Redis >= 7.0. Layout and the
atomic scripts are described in ``_redis_scripts.py``; the shared blocking read in
``_redis_watch.py``; reader presence in ``_redis_presence.py``.

Guarantees (on top of :class:`~mianzhang.log.EventLog`'s):

* ``append`` is one atomic script (create-if-missing, refuse if closed, next seq, exact-trimmed
  ``XADD``): seqs are contiguous per epoch across all processes.
* One process shares ONE blocking ``XREAD`` (one dedicated connection) among all its local
  followers of all streams; caught-up followers take new events from a bounded local cache,
  followers that lag read their own range with ``XRANGE`` through a bounded connection pool
  (``max_connections``). Memory per process: at most ``min(cache_size, max_events)`` cached
  events per watched stream, plus the current read of each follower that is catching up (at
  most ``read_batch`` events: ``FIRST_READ`` until an event's size is known, then about
  ``READ_BYTES`` characters of events the size of the last ones seen; a thousand lagging
  readers of 2 KB events hold about 32 MB, not 200); there is no per-follower queue.
* Every event read is checked for seq continuity and epoch: a follower lapped by trimming, or
  one whose stream lost its history (key expired, ``FLUSHALL``, Redis restarted without
  persistence), gets a ``Reset`` and continues with what exists. Never a silent gap.
* Redis errors become ``BackendUnavailable`` (``raise ... from exc``). ``append``, ``read``,
  ``info``, ``create``, ``close``, ``readers`` fail at once while Redis is down (an ``append``
  that fails this way may or may not have been applied if the connection broke mid-command).
  Followers retry with capped exponential backoff for up to ``reconnect_timeout`` seconds,
  then raise ``BackendUnavailable``. A follower whose stream vanished waits up to
  ``missing_timeout`` seconds for it to be re-created (a new epoch: ``Reset("epoch")``), then
  raises ``StreamNotFound``; if it had already seen the stream closed, it raises at once.
* ``readers()`` counts open follow iterators of every instance (presence expires ``presence_ttl``
  seconds after a process dies).

Not supported: Redis Cluster (the shared ``XREAD`` spans keys of many slots). The shared read
names every watched stream, so its cost per round trip grows with the number of streams this
process follows at once (fine for hundreds; shard processes for many thousands).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .._errors import LogError, StreamClosedError, StreamNotFound
from . import _redis_scripts as scripts
from ._common import (
    DEFAULT_IDEMPOTENCY_TTL,
    DEFAULT_MAX_EVENTS,
    DEFAULT_TTL_AFTER_CLOSE,
    LogStatistics,
    check_retention,
    check_stream_name,
    lapped,
    new_epoch,
    resolve_after,
)
from ._protocol import LogEvent, Reset, StreamInfo, StreamState, format_id, parse_id
from ._redis_errors import REDIS_ERRORS, backend_errors, translate
from ._redis_presence import Presence
from ._redis_watch import Backoff, StreamKeys, Watch, Watcher

__all__ = ["RedisEventLog"]

READ_BYTES = 32 * 1024
"""About how much event data (characters of ``data``) one read of a follower fetches, never
more than ``read_batch`` events: the count follows the size of the events it just read."""
FIRST_READ = 16
"""Events in a follower's first read, before their size is known."""


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """One atomic look at a stream: meta plus a range of events."""

    epoch: str
    state: StreamState
    last: int
    first: int | None
    events: list[LogEvent]
    max_events: int | None


def _read_count(read_batch: int, events: Sequence[LogEvent]) -> int:
    """Events per catching-up read: about ``READ_BYTES`` of events the size of ``events``."""
    size = sum(len(event.data) for event in events) // len(events)
    return max(1, min(read_batch, READ_BYTES // max(1, size)))


def _seq_of(entry_id: str) -> int:
    return int(entry_id[2:])  # "0-<seq>"


def _decode(epoch: str, raw: list[Any]) -> list[LogEvent]:
    """Raw XRANGE entries ``[id, [p, epoch, d, data, (e, event)]]`` -> events."""
    events = []
    for entry_id, fields in raw:
        seq = _seq_of(entry_id)
        events.append(
            LogEvent(format_id(epoch, seq), seq, fields[3], fields[5] if len(fields) > 4 else None)
        )
    return events


def _opt_int(value: str | None) -> int | None:
    return int(value) if value else None


def _opt_float(value: str | None) -> float | None:
    return float(value) if value else None


class RedisEventLog:
    """:class:`~mianzhang.log.EventLog` on Redis Streams, shared by every process using the same
    Redis and ``prefix`` (see module docstring for guarantees).

    ``max_events`` / ``ttl_after_close``: defaults for streams created without their own
    (``None``: unbounded / kept forever). Keys live under ``prefix`` with the stream name as
    hash tag. Use as ``async with RedisEventLog(url)`` or call :meth:`aclose`.

    Connections: a pool of at most ``max_connections`` for commands (waiting up to
    ``pool_timeout`` for a free one) plus one dedicated connection for the shared blocking read
    (``block_timeout`` seconds per ``XREAD``). Every command runs under ``timeout`` seconds
    (``connect_timeout`` to connect). Followers: ``reconnect_timeout`` (give up after that
    long without Redis), ``backoff_initial``/``backoff_max`` (retry delays), ``missing_timeout``
    (wait for a vanished stream), ``validate_interval`` (how often watched epochs are checked,
    which bounds how late a ``FLUSHALL`` is noticed), ``cache_size`` and ``read_batch``
    (memory, see module docstring), ``presence_ttl`` (how long a dead process's readers
    still count), ``idempotency_ttl`` (default for ``append(idempotency_key=...)``).
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
    ) -> None:
        check_retention(max_events, ttl_after_close)
        if max_connections < 1 or cache_size < 1 or read_batch < 1:
            raise ValueError("max_connections, cache_size and read_batch must be >= 1")
        self._prefix = prefix
        self._max_events = max_events
        self._ttl_after_close = ttl_after_close
        self._reconnect_timeout = reconnect_timeout
        self._missing_timeout = missing_timeout
        self._read_batch = read_batch
        self._timeout = timeout
        if not idempotency_ttl > 0:
            raise ValueError("idempotency_ttl must be > 0")
        self._idempotency_ttl = idempotency_ttl
        self._backoff = Backoff(backoff_initial, backoff_max)
        self._instance = secrets.token_hex(8)
        self._closed = False
        common: dict[str, Any] = {
            "decode_responses": True,
            "protocol": 2,
            "socket_connect_timeout": connect_timeout,
            # no socket_timeout: redis-py enforces it with asyncio.wait_for, which on Python
            # 3.11 can swallow a cancellation; every call here runs under asyncio.timeout
            "socket_timeout": None,
            "retry": Retry(NoBackoff(), 0),
        }
        self._pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=pool_timeout,
            client_name=f"mz-log:{self._instance}",
            **common,
        )
        self._redis = aioredis.Redis(connection_pool=self._pool)
        self._blocking_pool = aioredis.ConnectionPool.from_url(
            url,
            max_connections=1,
            client_name=f"mz-watch:{self._instance}",
            **common,
        )
        self._blocking = aioredis.Redis(connection_pool=self._blocking_pool)
        self._create = self._redis.register_script(scripts.CREATE)
        self._append = self._redis.register_script(scripts.APPEND)
        self._read = self._redis.register_script(scripts.READ)
        self._close = self._redis.register_script(scripts.CLOSE)
        self._readers = self._redis.register_script(scripts.READERS)
        self._watcher = Watcher(
            commands=self._redis,
            blocking=self._blocking,
            control_key=f"{prefix}ctl:{self._instance}",
            block_ms=max(1, int(block_timeout * 1000)),
            timeout=timeout,
            cache_size=cache_size,
            validate_interval=validate_interval,
            reconnect_timeout=reconnect_timeout,
            backoff=self._backoff,
        )
        self._presence = Presence(
            commands=self._redis,
            script=self._redis.register_script(scripts.PRESENCE),
            instance=self._instance,
            keys=self._keys,
            ttl=presence_ttl,
            backoff=self._backoff,
            timeout=timeout,
        )

    @property
    def instance(self) -> str:
        """This instance's id (in presence entries and in ``CLIENT LIST`` names)."""
        return self._instance

    def statistics(self) -> LogStatistics:
        """Streams watched by this instance's shared read, events in its cache, local
        followers."""
        return self._watcher.statistics()

    async def __aenter__(self) -> RedisEventLog:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- internals ------------------------------------------------------------------------
    def _keys(self, stream: str) -> StreamKeys:
        return StreamKeys.of(self._prefix, stream)

    def _check_open(self) -> None:
        if self._closed:
            raise LogError("the event log is closed")

    def _retention_args(self) -> list[str]:
        return [
            new_epoch(),
            repr(time.time()),
            "" if self._max_events is None else str(self._max_events),
            "" if self._ttl_after_close is None else repr(float(self._ttl_after_close)),
        ]

    async def _snapshot(
        self, keys: StreamKeys, epoch: str, after: int, count: int
    ) -> _Snapshot | None:
        """Meta + up to ``count`` events after seq ``after`` (if ``epoch`` is current, else from
        the oldest), atomically. ``None`` if the stream does not exist. Raises redis errors."""
        async with asyncio.timeout(self._timeout):
            raw = await self._read(keys=[keys.meta, keys.log], args=[epoch, after, count])
        if raw is None:
            return None
        current, state, last, oldest, entries, max_events = raw
        return _Snapshot(
            current,
            StreamState(state),
            int(last),
            _seq_of(oldest) if oldest else None,
            _decode(current, entries),
            _opt_int(max_events),
        )

    @staticmethod
    def _info(name: str, meta: dict[str, str], length: int) -> StreamInfo:
        state = StreamState(meta["state"])
        seq = int(meta["seq"])
        return StreamInfo(
            name=name,
            epoch=meta["epoch"],
            state=state,
            created=float(meta["created"]),
            last_id=format_id(meta["epoch"], seq) if seq else None,
            length=max(0, length - (state is not StreamState.OPEN)),
            max_events=_opt_int(meta.get("max")),
            ttl_after_close=_opt_float(meta.get("ttl")),
            meta={k[2:]: v for k, v in meta.items() if k.startswith("m:")},
        )

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
                flat, length = await self._create(keys=[keys.meta, keys.log], args=args)
        return self._info(stream, dict(zip(flat[::2], flat[1::2], strict=True)), int(length))

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
            ttl = self._idempotency_ttl if idempotency_ttl is None else idempotency_ttl
            if not ttl > 0:
                raise ValueError(f"idempotency_ttl must be > 0, not {idempotency_ttl!r}")
            script_keys.append(keys.idempotency(idempotency_key))
            args.append(str(max(1, int(ttl * 1000))))
        with backend_errors():
            async with asyncio.timeout(self._timeout):
                reply = await self._append(keys=script_keys, args=args)
        if reply is None:
            raise StreamClosedError(stream)
        return format_id(reply[0], int(reply[1]))

    async def read(
        self, stream: str, after: str | None = None, *, limit: int = 1000
    ) -> tuple[Reset | None, list[LogEvent]]:
        """Up to ``limit`` retained events after ``after``; raises ``StreamNotFound``."""
        self._check_open()
        if limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit!r}")
        parsed = parse_id(after) if after is not None else None
        epoch, seq = parsed if parsed is not None else ("", 0)
        with backend_errors():
            snap = await self._snapshot(self._keys(stream), epoch, seq, limit)
        if snap is None:
            raise StreamNotFound(stream)
        reset, start = resolve_after(after, epoch=snap.epoch, first=snap.first, last=snap.last)
        return reset, [e for e in snap.events if e.seq >= start][:limit]

    async def follow(
        self, stream: str, after: str | None = None
    ) -> AsyncGenerator[LogEvent | Reset, None]:
        """Replay after ``after``, then live events, until the stream is closed (resets and
        failures: see module docstring). The first read fails fast (``StreamNotFound``,
        ``BackendUnavailable``); afterwards Redis outages are retried. Counts in
        :meth:`readers` from the first ``__anext__`` until the iterator is closed."""
        self._check_open()
        keys = self._keys(stream)
        parsed = parse_id(after) if after is not None else None
        want_epoch, want_seq = parsed if parsed is not None else ("", 0)
        with backend_errors():
            snap: _Snapshot | None = await self._snapshot(
                keys, want_epoch, want_seq, min(self._read_batch, FIRST_READ)
            )
        if snap is None:
            raise StreamNotFound(stream)
        reset, next_seq = resolve_after(after, epoch=snap.epoch, first=snap.first, last=snap.last)
        epoch = snap.epoch
        seen_closed = snap.state is not StreamState.OPEN
        self._presence.change(stream, +1)
        watch: Watch | None = None
        try:
            watch = self._watcher.attach(
                stream, keys, epoch, snap.last, closed=seen_closed, max_events=snap.max_events
            )
            await self._watcher.include(watch)
            seen_version = watch.version
            # events per catching-up read: a few until their size is known, then READ_BYTES
            count = min(self._read_batch, FIRST_READ)
            sized = False
            if reset is not None:
                yield reset
            while True:
                if snap is not None:
                    # deliver a Redis read, checking epoch and seq continuity
                    if snap.epoch != epoch:
                        yield Reset(
                            "epoch",
                            format_id(epoch, next_seq - 1),
                            None if snap.first is None else format_id(snap.epoch, snap.first),
                            snap.epoch,
                        )
                        epoch = snap.epoch
                        next_seq = snap.first if snap.first is not None else snap.last + 1
                        await self._watcher.adopt(
                            watch,
                            epoch,
                            snap.last,
                            closed=snap.state is not StreamState.OPEN,
                            max_events=snap.max_events,
                        )
                    for event in snap.events:
                        if event.seq < next_seq:
                            continue
                        if event.seq > next_seq:
                            yield lapped(epoch, next_seq - 1, event.seq)
                        next_seq = event.seq + 1
                        yield event
                    if not snap.events and next_seq <= snap.last:
                        # nothing retained after next_seq - 1 although later seqs exist
                        yield lapped(epoch, next_seq - 1, snap.first)
                        next_seq = snap.last + 1
                    if snap.state is not StreamState.OPEN:
                        seen_closed = True
                        if next_seq > snap.last:
                            return
                    if snap.events:
                        # the next catching-up read: about READ_BYTES of events this size
                        count = _read_count(self._read_batch, snap.events)
                        sized = True
                    behind = next_seq <= snap.last
                    snap = None
                    if behind:
                        snap = await self._reread(
                            stream, keys, watch, epoch, next_seq, seen_closed, count
                        )
                        continue
                # fast path: the shared watcher's cache
                cached = watch.cached(epoch, next_seq)
                if cached is not None:
                    next_seq += 1
                    if not sized:  # the first event seen tells the size for catching up
                        count = _read_count(self._read_batch, (cached,))
                        sized = True
                    yield cached
                    continue
                if watch.error is not None:
                    raise watch.error
                if watch.version != seen_version or watch.last >= next_seq or watch.closed:
                    # the watcher saw something this follower has not: read it from Redis
                    hint = (watch.version, watch.last, watch.closed)
                    seen_version = watch.version
                    snap = await self._reread(
                        stream, keys, watch, epoch, next_seq, seen_closed, count
                    )
                    if (
                        snap.epoch == epoch
                        and snap.state is StreamState.OPEN
                        and next_seq > snap.last
                        and (watch.version, watch.last, watch.closed) == hint
                    ):
                        snap = None  # a stale hint, and nothing new meanwhile: wait
                        await watch.notifier.wait()
                    continue
                await watch.notifier.wait()
        finally:
            self._presence.change(stream, -1)
            if watch is not None:
                self._watcher.detach(watch)

    async def _reread(
        self,
        stream: str,
        keys: StreamKeys,
        watch: Watch,
        epoch: str,
        next_seq: int,
        seen_closed: bool,
        count: int,
    ) -> _Snapshot:
        """A follower's own read after seq ``next_seq - 1``, retried with backoff while Redis is
        unreachable (``BackendUnavailable`` after ``reconnect_timeout``). If the stream is gone,
        waits up to ``missing_timeout`` for a new history (``StreamNotFound`` after that, or at
        once if the follower had seen the stream closed: it expired)."""
        delays = self._backoff.delays()
        down_since: float | None = None
        missing_since: float | None = None
        while True:
            if self._closed:
                raise LogError("the event log was closed while following")
            if watch.error is not None:
                raise watch.error
            before = (watch.version, watch.last)
            try:
                snap = await self._snapshot(keys, epoch, next_seq - 1, count)
            except REDIS_ERRORS as exc:
                now = time.monotonic()
                if down_since is None:
                    down_since = now
                elif now - down_since > self._reconnect_timeout:
                    raise translate(exc) from exc
                # back off, but wake early if the log closes or the watcher gives up
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(next(delays)):
                        await watch.notifier.wait()
                continue
            down_since = None
            if snap is not None:
                return snap
            if seen_closed:
                raise StreamNotFound(stream)
            now = time.monotonic()
            if missing_since is None:
                missing_since = now
                await self._watcher.missing(watch)  # watch for re-creation from seq 0
                continue
            remaining = missing_since + self._missing_timeout - now
            if remaining <= 0:
                raise StreamNotFound(stream)
            if (watch.version, watch.last) == before:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await watch.notifier.wait()

    async def close(self, stream: str, *, state: StreamState = StreamState.CLOSED) -> None:
        """Mark ``stream`` finished and wake followers (end marker); its keys expire
        ``ttl_after_close`` seconds later. Idempotent (the first final state is kept)."""
        self._check_open()
        if state is StreamState.OPEN:
            raise ValueError("close() needs state CLOSED or CANCELLED")
        keys = self._keys(stream)
        with backend_errors():
            async with asyncio.timeout(self._timeout):
                result = await self._close(
                    keys=[keys.meta, keys.log], args=[StreamState(state).value, repr(time.time())]
                )
        if result is None:
            raise StreamNotFound(stream)

    async def info(self, stream: str) -> StreamInfo | None:
        self._check_open()
        keys = self._keys(stream)
        with backend_errors():
            async with asyncio.timeout(self._timeout), self._redis.pipeline(True) as pipe:
                pipe.hgetall(keys.meta)
                pipe.xlen(keys.log)
                meta, length = await pipe.execute()
        if not meta:
            return None
        return self._info(stream, meta, int(length))

    async def readers(self, stream: str) -> int:
        """Open ``follow`` iterators on ``stream`` across every instance (this instance's
        pending changes are published first)."""
        self._check_open()
        keys = self._keys(stream)
        with backend_errors():
            async with asyncio.timeout(self._timeout):
                await self._presence.flush()
                return int(await self._readers(keys=[keys.readers, keys.reader_counts]))

    async def aclose(self) -> None:
        """Stop the watcher and presence tasks (followers raise ``LogError``), withdraw this
        instance's presence, close connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._watcher.aclose()
            await self._presence.aclose()
        finally:
            await self._redis.aclose()
            await self._blocking.aclose()
            await self._pool.disconnect()
            await self._blocking_pool.disconnect()
