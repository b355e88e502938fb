"""One shared blocking read per ``RedisEventLog``: the watcher.

All local followers of all streams share ONE ``XREAD BLOCK`` loop on ONE dedicated connection
(named ``mz-watch:<instance>`` in ``CLIENT LIST``). For each stream with local followers there
is one :class:`Watch`: the watcher reads the stream after ``Watch.last``, keeps the newest
entries in a bounded cache (at most ``cache_size`` events, and at most the stream's
``max_events``) and wakes the watch's followers with one ``notify``. Followers that are caught
up take events from the cache without a Redis call (every follower gets the same event
object); followers that are further behind read their own range (``XRANGE`` through the log's
pool).

Adding a stream to the watched set while an ``XREAD`` is blocked "kicks" it: an entry is added
to this instance's control stream, which that ``XREAD`` includes, so it returns at once.

Failures: while Redis cannot be reached the watcher retries with capped exponential backoff.
When it reconnects, and every ``validate_interval`` seconds, it checks each watched stream's
epoch; a changed or vanished epoch (key expired, ``FLUSHALL``, restart without persistence)
bumps ``Watch.version``, which makes followers re-read and receive a ``Reset``. An outage
longer than ``reconnect_timeout`` fails every watch with ``BackendUnavailable``.

Ownership: the watcher task is started by the first :meth:`Watcher.attach` and cancelled and
awaited by :meth:`Watcher.aclose`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from ..._errors import LogError
from .._common import LogStatistics, Notifier
from .._protocol import LogEvent, format_id
from ._errors import REDIS_ERRORS, translate
from ._keys import StreamKeys
from ._retry import Backoff, Outage, stop_task

__all__ = ["Watch", "Watcher"]

logger = logging.getLogger("mianzhang.log.redis")


class Watch:
    """What the watcher knows about one stream, shared by that stream's local followers.

    ``epoch`` is the epoch of the cached entries (``None``: the stream is missing), ``last`` the
    newest seq the watcher has seen (its ``XREAD`` position), ``cache`` the newest events with
    contiguous seqs, ``version`` a counter bumped whenever followers must re-read from Redis
    (epoch changed, stream vanished), ``closed`` whether the end marker was seen, ``error``
    set when the watcher gave up (followers raise it).
    """

    __slots__ = (
        "cache",
        "closed",
        "epoch",
        "error",
        "followers",
        "keys",
        "last",
        "name",
        "notifier",
        "version",
    )

    def __init__(self, name: str, keys: StreamKeys, epoch: str | None, last: int, size: int):
        self.name = name
        self.keys = keys
        self.epoch = epoch
        self.last = last
        self.cache: deque[LogEvent] = deque(maxlen=size)
        self.notifier = Notifier()
        self.followers = 0
        self.version = 0
        self.closed = False
        self.error: LogError | None = None

    def cached(self, epoch: str, seq: int) -> LogEvent | None:
        """The event ``seq`` of ``epoch`` if the cache holds it."""
        cache = self.cache
        if not cache or self.epoch != epoch:
            return None
        first = cache[0].seq
        if first <= seq <= cache[-1].seq:
            return cache[seq - first]
        return None

    def receive(self, entries: list[Any]) -> None:
        """Take the entries ``(id, fields)`` the shared read returned: cache the events
        (restarting the cache on a gap or a new epoch), note the end marker, wake followers."""
        for entry_id, fields in entries:
            if entry_id.startswith("0-"):
                self._take(int(entry_id[2:]), fields)
            else:  # the end marker "1-0"
                self.closed = True
        self.notifier.notify()

    def _take(self, seq: int, fields: dict[str, str]) -> None:
        epoch = fields["p"]
        cache = self.cache
        if epoch != self.epoch:
            # new history under the same key: followers must re-read and reset
            self.epoch = epoch
            self.closed = False
            self.version += 1
            cache.clear()
        elif cache and cache[-1].seq + 1 != seq:
            cache.clear()  # a gap (trimmed between two reads): restart the cache
        cache.append(LogEvent(format_id(epoch, seq), seq, fields["d"], fields.get("e")))
        self.last = max(self.last, seq)

    def rewind(
        self, epoch: str | None, last: int, *, closed: bool = False, size: int | None = None
    ) -> None:
        """Forget the cache: the stream's history changed (or vanished: ``epoch=None``)."""
        self.epoch = epoch
        self.last = last
        self.closed = closed
        if size is not None and size != self.cache.maxlen:
            self.cache = deque(maxlen=size)
        else:
            self.cache.clear()
        self.version += 1
        self.notifier.notify()


class Watcher:
    """The shared blocking reader (see module docstring)."""

    def __init__(
        self,
        *,
        commands: Any,
        blocking: Any,
        control_key: str,
        block_ms: int,
        timeout: float,
        cache_size: int,
        validate_interval: float,
        reconnect_timeout: float,
        backoff: Backoff,
    ) -> None:
        self._commands = commands
        self._blocking = blocking
        self._control = control_key
        self._control_last = "0-0"
        self._block_ms = block_ms
        self._timeout = timeout
        self._cache_size = cache_size
        self._validate_interval = validate_interval
        self._reconnect_timeout = reconnect_timeout
        self._backoff = backoff
        self._watches: dict[str, Watch] = {}  # by log key
        self._in_flight: frozenset[str] = frozenset()
        self._idle = Notifier()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # -- followers' side --------------------------------------------------------------------
    def _size(self, max_events: int | None) -> int:
        """Cache at most ``max_events`` (the stream's retention) and at most ``cache_size``."""
        return self._cache_size if max_events is None else min(self._cache_size, max_events)

    def attach(
        self,
        name: str,
        keys: StreamKeys,
        epoch: str,
        last: int,
        *,
        closed: bool,
        max_events: int | None,
    ) -> Watch:
        """Register one local follower of ``name`` positioned at (``epoch``, ``last``).

        Synchronous, so a cancelled follower can never be registered without being
        unregistered; call :meth:`include` next, then :meth:`detach` in ``finally``."""
        if self._closed:
            raise LogError("the event log is closed")
        watch = self._watches.get(keys.log)
        if watch is None:
            size = self._size(max_events)
            watch = self._watches[keys.log] = Watch(name, keys, epoch, last, size)
            watch.closed = closed
        elif watch.epoch != epoch:
            watch.rewind(epoch, last, closed=closed, size=self._size(max_events))
        watch.followers += 1
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._guarded(), name=f"mianzhang-watch:{self._control}"
            )
        self._idle.notify()
        return watch

    async def include(self, watch: Watch) -> None:
        """Make sure the shared read covers ``watch`` now (kick it if it is blocked without)."""
        if watch.keys.log not in self._in_flight:
            await self.kick()

    def detach(self, watch: Watch) -> None:
        """Unregister one follower (synchronous: safe in ``finally`` during cancellation)."""
        watch.followers -= 1
        if watch.followers <= 0 and self._watches.get(watch.keys.log) is watch:
            del self._watches[watch.keys.log]

    async def adopt(
        self, watch: Watch, epoch: str, last: int, *, closed: bool, max_events: int | None
    ) -> None:
        """A follower read a new history (epoch) of its stream: watch that one from ``last``."""
        if watch.epoch != epoch:
            watch.rewind(epoch, last, closed=closed, size=self._size(max_events))
            await self.kick()

    async def missing(self, watch: Watch) -> None:
        """A follower found the stream gone: watch for its re-creation from seq 0."""
        if watch.epoch is not None or watch.last != 0:
            watch.rewind(None, 0)
            await self.kick()

    async def kick(self) -> None:
        """Make a blocked ``XREAD`` return now (best effort: without it, within ``block_ms``)."""
        try:
            async with (
                asyncio.timeout(self._timeout),
                self._commands.pipeline(transaction=False) as pipe,
            ):
                pipe.xadd(self._control, {"k": "1"}, maxlen=1, approximate=False)
                pipe.pexpire(self._control, max(60_000, 3 * self._block_ms))
                await pipe.execute()
        except REDIS_ERRORS as exc:  # the watcher is retrying anyway
            logger.debug("watcher kick failed: %r", exc)

    # -- the loop ---------------------------------------------------------------------------
    async def _guarded(self) -> None:
        try:
            await self._run()
        except Exception as exc:  # a bug: followers must not hang on a dead watcher
            logger.exception("event log watcher crashed")
            failure = LogError(f"event log watcher crashed: {exc!r}")
            failure.__cause__ = exc
            self._fail_all(failure)

    async def _run(self) -> None:
        outage = Outage(self._reconnect_timeout)
        delays = self._backoff.delays()
        next_check = time.monotonic() + self._validate_interval
        while True:
            if not self._watches:
                self._in_flight = frozenset()
                await self._idle.wait()
                continue
            try:
                if outage.ongoing or time.monotonic() >= next_check:
                    await self._validate()
                    next_check = time.monotonic() + self._validate_interval
                reply = await self._read_once(next_check)
            except REDIS_ERRORS as exc:
                self._lost(exc, outage)
                await asyncio.sleep(next(delays))
                continue
            self._in_flight = frozenset()
            if outage.end():
                logger.warning("event log watcher reconnected to Redis")
                delays = self._backoff.delays()
            if reply:
                self._dispatch(reply)

    async def _read_once(self, next_check: float) -> Any:
        """One ``XREAD BLOCK`` over every watched open stream and the control stream,
        blocking no longer than until the next validation is due."""
        streams = {
            key: f"0-{watch.last}" for key, watch in self._watches.items() if not watch.closed
        }
        streams[self._control] = self._control_last
        self._in_flight = frozenset(streams)
        block = max(1, min(self._block_ms, int((next_check - time.monotonic()) * 1000)))
        async with asyncio.timeout(block / 1000 + self._timeout):
            return await self._blocking.xread(streams, count=self._cache_size, block=block)

    def _lost(self, exc: BaseException, outage: Outage) -> None:
        """A round failed: forget what was in flight; once the outage has lasted over
        ``reconnect_timeout``, fail every watch (and start counting again)."""
        self._in_flight = frozenset()
        self._control_last = "0-0"
        first = not outage.ongoing
        if outage.fail():
            failure = translate(exc)
            failure.__cause__ = exc
            self._fail_all(failure)
            outage.end()
        elif first:
            logger.warning("event log watcher lost Redis: %r", exc)

    def _dispatch(self, reply: list[Any]) -> None:
        """Hand each stream's new entries to its watch (which wakes its followers)."""
        for key, entries in reply:
            if key == self._control:
                if entries:
                    self._control_last = entries[-1][0]
                continue
            watch = self._watches.get(key)
            if watch is not None and entries:
                watch.receive(entries)

    async def _validate(self) -> None:
        """Compare each watched stream's epoch in Redis with the watch's; rewind on change."""
        watches = list(self._watches.values())
        if not watches:
            return
        async with (
            asyncio.timeout(self._timeout),
            self._commands.pipeline(transaction=False) as pipe,
        ):
            for watch in watches:
                pipe.hmget(watch.keys.meta, "epoch", "seq", "state", "max")
            replies = await pipe.execute()
        for watch, (epoch, seq, state, max_events) in zip(watches, replies, strict=True):
            if epoch != watch.epoch:
                logger.info("stream %r changed epoch %s -> %s", watch.name, watch.epoch, epoch)
                watch.rewind(
                    epoch,
                    int(seq) if seq else 0,
                    closed=state not in (None, "open"),
                    size=self._size(int(max_events) if max_events else None),
                )

    def _fail_all(self, error: LogError) -> None:
        watches = list(self._watches.values())
        self._watches.clear()
        for watch in watches:
            watch.error = error
            watch.notifier.notify()

    async def aclose(self) -> None:
        """Stop the loop; every follower still attached raises ``LogError``."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            await stop_task(task)
        self._fail_all(LogError("the event log was closed while following"))

    def statistics(self) -> LogStatistics:
        watches = list(self._watches.values())
        return LogStatistics(
            streams=len(watches),
            events=sum(len(watch.cache) for watch in watches),
            followers=sum(watch.followers for watch in watches),
        )
