"""The watcher on a Redis Cluster: sharded pub/sub wake-ups, per-slot reads.

One ``XREAD`` cannot name keys of several slots on a cluster, and a blocking read per slot
would need a connection per slot. Instead, ``append`` and ``close`` publish the new seq on the
stream's wake channel (``SPUBLISH``, which stays on the stream's shard), and this watcher:

1. subscribes (``SSUBSCRIBE``) to the wake channel of every watched stream, on one dedicated
   connection per master (:class:`~._shard_pubsub.ShardSubscriber`), routed by the client's
   slot map;
2. marks a stream to read when its subscription is confirmed (so appends made before the
   subscription are not missed), when a wake message arrives, when a follower moved its watch,
   and every ``validate_interval`` seconds (so a lost message costs at most that long);
3. reads the marked streams with the ``WATCH_READ`` script, one call per slot (all pipelined):
   each stream's meta and its entries after ``Watch.last``; a changed, vanished or rolled-back
   history rewinds the watch (see ``Watcher._check``), new entries go to the watch's cache.

Failover: when a master dies its subscriber's connection breaks; the watcher refreshes the
slot map and subscribes again where the slots now live, then re-reads those streams. Failures
are per node: streams of healthy masters keep being read while another master is down; the
failed routing and reads are retried with capped exponential backoff (the cluster is down for
those slots until a replica is promoted). The promoted replica may lack the last writes; the
scripts then start a new epoch (see ``_scripts.py``), so followers get a ``Reset``, never a
silent gap. A stream that cannot be read for longer than ``reconnect_timeout`` fails its
followers with ``BackendUnavailable``.

Ownership: the subscribers (connections and listener tasks) are opened by the watcher's loop
and closed in its ``finally`` (the loop task itself is owned by ``Watcher``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from typing import Any, Unpack

from ._errors import REDIS_ERRORS, translate
from ._scripts import WATCH_READ
from ._shard_pubsub import ShardSubscriber
from ._watch import Watch, Watcher
from ._watch_options import WatchOptions

__all__ = ["ShardWatcher"]

logger = logging.getLogger("mianzhang.log.redis")


def _fields(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


class ShardWatcher(Watcher):
    """The shared reader of a Redis Cluster (see the module docstring)."""

    def __init__(
        self,
        *,
        cluster: Any,
        client_name: str,
        **options: Unpack[WatchOptions],
    ) -> None:
        super().__init__(name=client_name, **options)
        self._cluster = cluster
        self._client_name = client_name
        self._subscribers: dict[str, ShardSubscriber] = {}  # by node name
        self._channels: dict[str, str] = {}  # wake channel -> log key
        self._dirty: set[str] = set()  # log keys to read
        self._wake = asyncio.Event()
        self._stale_map = True  # ask the cluster for its slot map before the first routing
        self._reroute = True  # the watched set or the map changed since the last routing
        self._down: dict[str, float] = {}  # log key -> when its routing or reads began failing
        self._retry: set[str] = set()  # log keys to read again at _retry_at
        self._retry_at = 0.0  # when failures are retried (0: none pending)
        self._delays = self._backoff.delays()
        self._error: BaseException | None = None  # the last failure

    # -- followers' side --------------------------------------------------------------------
    async def include(self, watch: Watch) -> None:
        """The loop subscribes the stream's channel (and reads it once confirmed)."""
        self._reroute = True
        self._wake.set()

    def detach(self, watch: Watch) -> None:
        super().detach(watch)
        self._reroute = True  # unsubscribe lazily, on the loop's next round

    async def _changed(self, watch: Watch) -> None:
        self._mark(watch.keys.log)

    def _mark(self, key: str) -> None:
        self._dirty.add(key)
        self._wake.set()

    # -- subscriber callbacks ---------------------------------------------------------------
    def _on_wake(self, channel: str) -> None:
        key = self._channels.get(channel)
        if key is not None:
            self._mark(key)

    def _on_lost(self, channel: str) -> None:
        self._stale_map = self._reroute = True
        self._on_wake(channel)

    def _on_failed(self, subscriber: ShardSubscriber) -> None:
        self._stale_map = self._reroute = True
        self._wake.set()

    # -- the loop ---------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            await self._loop()
        finally:
            for subscriber in list(self._subscribers.values()):
                await subscriber.aclose()
            self._subscribers.clear()

    async def _loop(self) -> None:
        next_check = time.monotonic() + self._validate_interval
        while True:
            if not self._watches:
                await self._unsubscribe_all()
                await self._idle.wait()
                continue
            self._wake.clear()
            if time.monotonic() >= next_check:
                self._dirty |= set(self._watches)  # validate: read every watched stream
                next_check = time.monotonic() + self._validate_interval
            try:
                await self._round()
            except REDIS_ERRORS as exc:  # the slot map itself could not be read
                self._stale_map = self._reroute = True
                self._failed(list(self._watches), exc)
            self._settle()
            await self._wait(min(next_check, self._retry_at or next_check))

    async def _round(self) -> None:
        """Route (when due) and read what is marked; failures are noted per stream."""
        if time.monotonic() >= self._retry_at:
            self._dirty |= self._retry
            self._retry.clear()
            if self._reroute:
                await self._route()
        await self._read_dirty()

    def _failed(self, keys: list[str], exc: BaseException) -> None:
        """These streams could not be routed or read: retry them later, note since when."""
        now = time.monotonic()
        if not self._down:
            logger.warning("event log watcher lost part of the Redis Cluster: %r", exc)
        for key in keys:
            self._down.setdefault(key, now)
        self._retry.update(keys)
        self._error = exc

    def _settle(self) -> None:
        """After a round: schedule the retry of failures (backoff), fail the streams down
        for over ``reconnect_timeout``, or note the recovery."""
        for key in [key for key in self._down if key not in self._watches]:
            del self._down[key]  # no longer followed here
        if self._down:
            if time.monotonic() >= self._retry_at:  # this round retried: back off further
                self._retry_at = time.monotonic() + next(self._delays)
            expired = [
                key
                for key, since in self._down.items()
                if time.monotonic() - since > self._reconnect_timeout
            ]
            if expired and self._error is not None:
                failure = translate(self._error)
                failure.__cause__ = self._error
                self._fail(expired, failure)
                for key in expired:
                    del self._down[key]
                    self._retry.discard(key)
        elif self._retry_at:
            logger.warning("event log watcher reconnected to the Redis Cluster")
            self._retry_at = 0.0
            self._delays = self._backoff.delays()

    async def _wait(self, until: float) -> None:
        """Until something is to be done, or ``until`` (a validation or a retry is due)."""
        if self._dirty or self._wake.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, until - time.monotonic())):
                await self._wake.wait()

    async def _route(self) -> None:
        """Subscribe each watched stream's wake channel on the master serving its slot, drop
        what is no longer watched or lives elsewhere now; a node that fails is retried later
        (its streams noted down), the others are served."""
        await self._drop_failed()
        if self._stale_map:
            await self._refresh_map()
        self._channels = {watch.keys.wake: key for key, watch in self._watches.items()}
        wanted: defaultdict[str, set[str]] = defaultdict(set)
        nodes: dict[str, Any] = {}
        for channel in self._channels:
            node = self._cluster.get_node_from_key(channel)
            nodes[node.name] = node
            wanted[node.name].add(channel)
        for name in set(self._subscribers) - set(wanted):
            await self._subscribers.pop(name).aclose()
        self._reroute = False
        for name, channels in wanted.items():
            try:
                await self._subscribe(nodes[name], channels)
            except REDIS_ERRORS as exc:
                self._stale_map = self._reroute = True
                self._failed([self._channels[channel] for channel in channels], exc)

    async def _subscribe(self, node: Any, channels: set[str]) -> None:
        subscriber = self._subscribers.get(node.name) or await self._open(node)
        async with asyncio.timeout(self._timeout):
            await subscriber.want(channels)

    async def _refresh_map(self) -> None:
        """Ask the cluster where the slots live now (after a failover or a move)."""
        async with asyncio.timeout(self._timeout):
            await self._cluster.nodes_manager.initialize()
        self._stale_map = False

    async def _open(self, node: Any) -> ShardSubscriber:
        subscriber = ShardSubscriber(
            node,
            client_name=self._client_name,
            ready=self._on_wake,
            message=self._on_wake,
            lost=self._on_lost,
            failed=self._on_failed,
        )
        try:
            async with asyncio.timeout(self._timeout):
                await subscriber.open()
        except BaseException:
            await subscriber.aclose()
            raise
        self._subscribers[subscriber.name] = subscriber
        return subscriber

    async def _drop_failed(self) -> None:
        """Close subscribers whose connection broke; their streams are read again once
        subscribed elsewhere (their confirmations mark them)."""
        for name, subscriber in list(self._subscribers.items()):
            if subscriber.error is not None:
                del self._subscribers[name]
                await subscriber.aclose()

    async def _unsubscribe_all(self) -> None:
        for subscriber in list(self._subscribers.values()):
            await subscriber.aclose()
        self._subscribers.clear()
        self._channels.clear()
        self._down.clear()
        self._retry.clear()
        self._retry_at = 0.0

    async def _read_dirty(self) -> None:
        """Read the marked streams (one ``WATCH_READ`` per slot, pipelined) and hand what
        changed to their watches; a slot whose read fails is retried later."""
        watches = [self._watches[key] for key in self._dirty if key in self._watches]
        self._dirty.clear()
        groups: defaultdict[int, list[Watch]] = defaultdict(list)
        for watch in watches:
            groups[self._cluster.keyslot(watch.keys.log)].append(watch)
        if not groups:
            return
        replies = await self._read_groups(list(groups.values()))
        for group, reply in zip(groups.values(), replies, strict=True):
            if isinstance(reply, BaseException):
                self._failed([watch.keys.log for watch in group], reply)
                continue
            for watch, state in zip(group, reply, strict=True):
                self._down.pop(watch.keys.log, None)
                self._apply(watch, *state)

    async def _read_groups(self, groups: list[list[Watch]]) -> list[Any]:
        """One reply per group, or the error that group's read met. One pipeline per node, run
        side by side: a node that is down does not delay the others."""
        replies: list[Any] = [None] * len(groups)
        by_node: defaultdict[str, list[int]] = defaultdict(list)
        for index, group in enumerate(groups):
            try:
                by_node[self._cluster.get_node_from_key(group[0].keys.log).name].append(index)
            except REDIS_ERRORS as exc:  # no node serves that slot now
                replies[index] = exc

        async def read_node(indexes: list[int]) -> None:
            node_replies = await self._read_on_one_node([groups[i] for i in indexes])
            for index, reply in zip(indexes, node_replies, strict=True):
                replies[index] = reply

        async with asyncio.TaskGroup() as tasks:
            for indexes in by_node.values():
                tasks.create_task(read_node(indexes))
        return replies

    async def _read_on_one_node(self, groups: list[list[Watch]]) -> list[Any]:
        try:
            async with (
                asyncio.timeout(self._timeout),
                self._cluster.pipeline(transaction=False) as pipe,
            ):
                for group in groups:
                    keys = [key for watch in group for key in (watch.keys.meta, watch.keys.log)]
                    lasts = [watch.last for watch in group]
                    # EVAL, not EVALSHA: a promoted replica has no scripts loaded yet
                    pipe.eval(WATCH_READ, len(keys), *keys, self._cache_size, *lasts)
                return list(await pipe.execute(raise_on_error=False))
        except REDIS_ERRORS as exc:
            return [exc] * len(groups)

    def _apply(
        self,
        watch: Watch,
        epoch: str | None,
        seq: str | None,
        state: str | None,
        max_: Any,
        entries: list[Any],
    ) -> None:
        """One stream as read: rewind on a changed history, else cache the new entries."""
        if self._check(watch, epoch, seq, state, max_):
            return
        if entries:
            watch.receive([(entry_id, _fields(flat)) for entry_id, flat in entries])
        if state not in (None, "open") and not watch.closed:
            watch.closed = True
            watch.notifier.notify()
