"""The watch of each stream a process follows, and the watcher that feeds them (base).

For each stream with local followers there is one :class:`Watch`: the watcher reads the
stream after ``Watch.last``, keeps the newest entries in a bounded cache (at most
``cache_size`` events, and at most the stream's ``max_events``) and wakes the watch's
followers with one ``notify``. Followers that are caught up take events from the cache without
a Redis call (every follower gets the same event object); followers that are further behind
read their own range (``XRANGE`` through the log's pool).

How the watcher learns of new entries depends on the deployment, one subclass each:

* :class:`~._watch_xread.XReadWatcher` (one server, Sentinel): ONE ``XREAD BLOCK`` over every
  watched stream, on one dedicated connection;
* :class:`~._watch_shards.ShardWatcher` (Redis Cluster, where one command cannot span slots):
  sharded pub/sub wake-ups on one connection per master, and per-slot reads.

Common to both: while Redis cannot be reached the watcher retries with capped exponential
backoff. When it reconnects, and every ``validate_interval`` seconds, it checks each watched
stream in Redis: a changed or vanished epoch (key expired, ``FLUSHALL``, restart without
persistence, a failover), or fewer seqs than it has seen in the same epoch (a failover lost
writes), rewinds the watch (bumps ``Watch.version``), which makes followers re-read and
receive a ``Reset``. An outage longer than ``reconnect_timeout`` fails every watch with
``BackendUnavailable``.

Dead producers: with :meth:`Watcher.enable_lease_probe`, a :class:`~._lease_probe.LeaseProbe`
checks the producer's lease of watched streams that stay idle (``_lease_probe.py``).

Ownership: the watcher task (and the probe's) is started by :meth:`Watcher.attach` when not
running, and cancelled and awaited by :meth:`Watcher.aclose` (with every task or connection it
opened).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from ..._errors import LogError
from .._common import LogStatistics, Notifier
from .._fanout import Fanout
from .._protocol import LogEvent, format_id
from ._errors import translate
from ._keys import StreamKeys
from ._lease_probe import CheckFn, LeaseProbe
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
        self.notifier = Fanout()  # caught-up followers parked on it get pushes (``log._fanout``)
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

    def pushable(self, position: int, token: tuple[str, int]) -> list[LogEvent] | None:
        """The cached events from ``position`` on for followers parked with ``token``
        (their epoch, and the version they had seen): ``None`` when the cache cannot serve
        them (a new history, the end, a failure, or events it no longer holds)."""
        if self.error is not None or self.closed or token != (self.epoch, self.version):
            return None
        cache = self.cache
        if position > self.last:
            return []
        if not cache or not cache[0].seq <= position <= cache[-1].seq == self.last:
            return None
        first = cache[0].seq
        return [cache[index] for index in range(position - first, len(cache))]

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
    """The shared reader of one log's watched streams (see the module docstring); subclasses
    implement :meth:`_run` (the loop), :meth:`include` and :meth:`_changed`."""

    def __init__(
        self,
        *,
        name: str,
        timeout: float,
        cache_size: int,
        validate_interval: float,
        reconnect_timeout: float,
        backoff: Backoff,
    ) -> None:
        self._name = name
        self._timeout = timeout
        self._cache_size = cache_size
        self._validate_interval = validate_interval
        self._reconnect_timeout = reconnect_timeout
        self._backoff = backoff
        self._watches: dict[str, Watch] = {}  # by log key
        self._idle = Notifier()
        self._task: asyncio.Task[None] | None = None
        self._probe: LeaseProbe | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self._closed = False

    def enable_lease_probe(self, check: CheckFn, *, idle: float, interval: float) -> None:
        """Check the producer's lease of streams idle for ``idle`` seconds, every
        ``interval`` seconds (see ``_lease_probe.py``)."""
        self._probe = LeaseProbe(self._watches, check, idle=idle, interval=interval)

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
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._guarded(), name=f"mianzhang-watch:{self._name}")
        if self._probe is not None and (self._probe_task is None or self._probe_task.done()):
            self._probe_task = loop.create_task(
                self._guarded_probe(self._probe), name=f"mianzhang-leases:{self._name}"
            )
        self._idle.notify()
        return watch

    async def include(self, watch: Watch) -> None:
        """Make sure the shared read covers ``watch`` now."""
        raise NotImplementedError

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
            await self._changed(watch)

    async def missing(self, watch: Watch) -> None:
        """A follower found the stream gone: watch for its re-creation from seq 0."""
        if watch.epoch is not None or watch.last != 0:
            watch.rewind(None, 0)
            await self._changed(watch)

    async def _changed(self, watch: Watch) -> None:
        """``watch`` was moved: make the shared read use its new position soon."""
        raise NotImplementedError

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
        raise NotImplementedError

    @staticmethod
    async def _guarded_probe(probe: LeaseProbe) -> None:
        try:
            await probe.run()
        except Exception:  # a bug: followers still get every event, only later ends
            logger.exception("lease probe crashed")

    def _check(
        self, watch: Watch, epoch: str | None, seq: str | None, state: str | None, max_: Any
    ) -> bool:
        """Compare what Redis holds (meta ``epoch``, ``seq``, ``state``, ``max``) with the
        watch; rewind it (and say so) if the history changed: a new or vanished epoch, or
        fewer seqs than seen in the same epoch (a failover lost writes)."""
        last = int(seq) if seq else 0
        if epoch == watch.epoch and last >= watch.last:
            return False
        logger.info(
            "stream %r changed: epoch %s -> %s, seq %d -> %d",
            watch.name,
            watch.epoch,
            epoch,
            watch.last,
            last,
        )
        closed = state not in (None, "open")
        size = self._size(int(max_) if max_ else None)
        watch.rewind(epoch, last, closed=closed, size=size)
        return True

    def _lost(self, exc: BaseException, outage: Outage) -> None:
        """A round failed; once the outage has lasted over ``reconnect_timeout``, fail every
        watch (and start counting again)."""
        first = not outage.ongoing
        if outage.fail():
            failure = translate(exc)
            failure.__cause__ = exc
            self._fail_all(failure)
            outage.end()
        elif first:
            logger.warning("event log watcher lost Redis: %r", exc)

    def _fail_all(self, error: LogError) -> None:
        self._fail(list(self._watches), error)

    def _fail(self, keys: list[str], error: LogError) -> None:
        """Give up on these watches: their followers raise ``error``."""
        for key in keys:
            watch = self._watches.pop(key, None)
            if watch is not None:
                watch.error = error
                watch.notifier.notify()

    async def aclose(self) -> None:
        """Stop the loop; every follower still attached raises ``LogError``."""
        self._closed = True
        task, self._task = self._task, None
        probe, self._probe_task = self._probe_task, None
        for running in (task, probe):
            if running is not None:
                await stop_task(running)
        self._fail_all(LogError("the event log was closed while following"))

    def statistics(self) -> LogStatistics:
        watches = list(self._watches.values())
        return LogStatistics(
            streams=len(watches),
            events=sum(len(watch.cache) for watch in watches),
            followers=sum(watch.followers for watch in watches),
        )
