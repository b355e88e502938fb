"""One ``follow`` iterator of the Redis event log: its position and the steps that advance it.

Guarantees: a :class:`Follower` delivers the events of its stream in seq order, each exactly
once. Where seqs cannot be delivered (trimming overtook it, or the stream's history was
replaced: a new epoch) it delivers a :class:`~mianzhang.log.Reset` first and continues with
the oldest event that exists. Never a silent gap. It ends after the last event of a closed
stream.

Where the next events come from, cheapest first:

1. a Redis read it holds (its first read, or its own catching-up read);
2. the shared watcher's cache, for a follower that is caught up (no Redis call);
3. a read of its own (``XRANGE`` through the log's pool) when the watcher has seen something
   the cache cannot give it (it fell behind the cache, the epoch changed, the stream closed);
4. otherwise it waits for the watcher's next notification.

Memory: a follower holds at most one read (``count`` events: ``FIRST_READ`` until it has seen
an event, then about ``READ_BYTES`` characters of events the size of the last ones seen, never
more than ``read_batch``); it reads again only once that read has been consumed.

Failures: while Redis is unreachable its reads are retried with capped exponential backoff
for up to ``reconnect_timeout`` seconds (then ``BackendUnavailable``); a vanished stream is
waited for up to ``missing_timeout`` seconds (then ``StreamNotFound``, or at once if the
follower had seen it closed: it expired); the watcher's failure is raised as is.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from ..._errors import LogError, StreamNotFound
from .._common import lapped, resolve_after
from .._fanout import Push
from .._protocol import LogEvent, Reset, StreamState, format_id
from ._errors import REDIS_ERRORS, backend_errors, translate
from ._keys import StreamKeys
from ._presence import Presence
from ._retry import Backoff, Outage
from ._snapshot import Snapshot, position
from ._watch import Watch, Watcher

__all__ = [
    "FIRST_READ",
    "READ_BYTES",
    "FollowContext",
    "FollowPolicy",
    "Follower",
    "ReadFn",
    "follow",
    "read_count",
]

READ_BYTES = 32 * 1024
"""About how much event data (characters of ``data``) one read of a follower fetches, never
more than ``read_batch`` events: the count follows the size of the events it just read."""
FIRST_READ = 16
"""Events in a follower's first read, before their size is known."""

Item = LogEvent | Reset
ReadFn = Callable[[StreamKeys, str, int, int], Awaitable[Snapshot | None]]
"""``read(keys, epoch, after, count)``: one atomic read (see ``RedisEventLog._snapshot``)."""


def read_count(read_batch: int, events: Sequence[LogEvent]) -> int:
    """Events per catching-up read: about ``READ_BYTES`` of events the size of ``events``."""
    size = sum(len(event.data) for event in events) // len(events)
    return max(1, min(read_batch, READ_BYTES // max(1, size)))


@dataclass(frozen=True, slots=True)
class FollowPolicy:
    """How followers of one log read and how long they wait (the log's settings)."""

    read_batch: int
    reconnect_timeout: float
    missing_timeout: float
    backoff: Backoff


@dataclass(frozen=True, slots=True)
class FollowContext:
    """What the followers of one log share: how to read, its watcher and presence, its
    settings, and whether it is closed."""

    read: ReadFn
    first_read: ReadFn  # the same, shared by followers starting together (``_first_reads``)
    watcher: Watcher
    presence: Presence
    policy: FollowPolicy
    is_closed: Callable[[], bool]


_ITEMS = (LogEvent, Reset)  # a tuple: isinstance with a union type is several times slower


async def follow(
    ctx: FollowContext, stream: str, keys: StreamKeys, after: str | None, push: Push | None = None
) -> AsyncGenerator[Item, None]:
    """The follow iterator: replay after ``after``, then live events, until the stream is
    closed (guarantees: see the module docstring); with ``push``, see ``log._fanout``.

    Reads the stream once, failing fast (``StreamNotFound``, ``BackendUnavailable``); then
    counts in the stream's readers and attaches to the shared watch, and repeats
    :meth:`Follower.next` (yield an item, or await what it returns for more) until the stream
    ends. Stops counting and detaches in ``finally``, also when closed or cancelled."""
    if ctx.is_closed():
        raise LogError("the event log is closed")
    first = await _first_read(ctx, stream, keys, after)
    ctx.presence.change(stream, +1)
    watch: Watch | None = None
    try:
        watch = await _attach(ctx, stream, keys, first)
        follower = Follower(ctx, stream, keys, watch, first, after)
        while True:
            # a caught-up follower's fast path, inlined from Follower.next (a call more per
            # event costs ~15% CPU at 1,000 followers): the shared cache, or a wait
            caught_up = (
                not (follower._ready or follower._pending or follower._behind)
                and not follower._ended
            )
            if caught_up and follower._sized:
                event = watch.cached(follower._epoch, follower._next_seq)
                if event is not None:
                    follower._next_seq += 1
                    yield event
                    continue
            if caught_up and follower._nothing_seen(watch):  # nothing new: wait for it
                if push is None:
                    await watch.notifier.wait()
                else:  # parked: pushes serve it until it must read again (``log._fanout``)
                    follower._next_seq = await follower.park(push)
                continue
            step = follower.next()
            if step is None:
                return
            if isinstance(step, _ITEMS):
                yield step
            else:
                await step  # wait for more: a Redis read, or the watcher
    finally:
        ctx.presence.change(stream, -1)
        if watch is not None:
            ctx.watcher.detach(watch)


async def _first_read(
    ctx: FollowContext, stream: str, keys: StreamKeys, after: str | None
) -> Snapshot:
    epoch, seq = position(after)
    with backend_errors():
        first = await ctx.first_read(keys, epoch, seq, min(ctx.policy.read_batch, FIRST_READ))
    if first is None:
        raise StreamNotFound(stream)
    return first


async def _attach(ctx: FollowContext, stream: str, keys: StreamKeys, first: Snapshot) -> Watch:
    """Register with the shared watcher at the first read's position and make sure its
    shared read covers the stream now."""
    closed = first.state is not StreamState.OPEN
    watch = ctx.watcher.attach(
        stream, keys, first.epoch, first.last, closed=closed, max_events=first.max_events
    )
    try:
        await ctx.watcher.include(watch)
    except BaseException:
        ctx.watcher.detach(watch)
        raise
    return watch


class Follower:
    """The position of one follow iterator (epoch, next seq) and the steps that advance it,
    built after its first read with its watch attached (see :func:`follow`)."""

    __slots__ = (
        "_behind",
        "_count",
        "_ctx",
        "_ended",
        "_epoch",
        "_keys",
        "_next_seq",
        "_pending",
        "_ready",
        "_seen_closed",
        "_seen_version",
        "_sized",
        "_stream",
        "_watch",
    )

    def __init__(
        self,
        ctx: FollowContext,
        stream: str,
        keys: StreamKeys,
        watch: Watch,
        first: Snapshot,
        after: str | None,
    ) -> None:
        self._ctx = ctx
        self._stream = stream
        self._keys = keys
        self._watch = watch
        reset, self._next_seq = resolve_after(
            after, epoch=first.epoch, first=first.first, last=first.last
        )
        self._ready: deque[Item] = deque([reset] if reset is not None else [])
        self._epoch = first.epoch
        self._seen_closed = first.state is not StreamState.OPEN
        self._seen_version = watch.version
        self._count = min(ctx.policy.read_batch, FIRST_READ)  # events per catching-up read
        self._sized = False  # whether _count was sized from an event seen
        self._pending: Snapshot | None = first  # a Redis read to deliver
        self._behind = False  # Redis holds events after the position: read them next
        self._ended = False  # the closed stream ends here (once _ready is empty)

    # -- the one step follow() repeats --------------------------------------------------------
    def next(self) -> Item | Awaitable[None] | None:
        """The next item if it is at hand (queued from a read, or the next event in the shared
        cache: a caught-up follower's fast path, no Redis call); else what to await for more;
        ``None`` once the closed stream has been delivered to its end.

        What to await: delivering the Redis read held (reading first if Redis holds events
        after the position), else reading Redis if the watcher has seen something this
        follower has not, else the watcher's next notification (a bare future)."""
        if self._ready:
            return self._ready.popleft()
        if self._ended:
            return None
        if self._pending is not None or self._behind:
            return self._deliver_next_read()
        watch = self._watch
        event = watch.cached(self._epoch, self._next_seq)
        if event is not None:
            self._next_seq += 1
            if not self._sized:  # the first event seen tells the size for catching up
                self._size_reads((event,))
            return event
        if watch.error is not None:
            raise watch.error
        if self._nothing_seen(watch):
            return watch.notifier.wait()
        return self._read_news()

    def park(self, push: Push) -> asyncio.Future[int]:
        """Park on the watch's fanout; the future gives the position to resume at."""
        watch, token = self._watch, (self._epoch, self._seen_version)
        return watch.notifier.park(push, self._next_seq, watch.pushable, token)

    def _nothing_seen(self, watch: Watch) -> bool:
        """The watcher has seen nothing this follower has not (no newer seq, epoch, end)."""
        return (
            watch.error is None
            and watch.version == self._seen_version
            and watch.last < self._next_seq
            and not watch.closed
        )

    # -- the algorithm ------------------------------------------------------------------------
    async def _deliver_next_read(self) -> None:
        read = self._pending
        if read is None:  # behind: Redis holds events after the position
            read = await self._reread()
        self._pending = None
        self._behind = False
        await self._deliver(read)

    async def _deliver(self, read: Snapshot) -> None:
        """Queue what ``read`` holds after the position, checking its epoch and seq
        continuity; note whether the stream ended here or Redis holds more."""
        if read.epoch != self._epoch:
            await self._enter_epoch(read)
        self._queue_events(read)
        if read.state is not StreamState.OPEN:
            self._seen_closed = True
            self._ended = self._next_seq > read.last
        if read.events:
            self._size_reads(read.events)
        self._behind = self._next_seq <= read.last

    async def _enter_epoch(self, read: Snapshot) -> None:
        """The stream has a new history: a ``Reset("epoch")``, then its oldest event."""
        first = None if read.first is None else format_id(read.epoch, read.first)
        requested = format_id(self._epoch, self._next_seq - 1)
        self._ready.append(Reset("epoch", requested, first, read.epoch))
        self._epoch = read.epoch
        self._next_seq = read.first if read.first is not None else read.last + 1
        closed = read.state is not StreamState.OPEN
        await self._ctx.watcher.adopt(
            self._watch, read.epoch, read.last, closed=closed, max_events=read.max_events
        )

    def _queue_events(self, read: Snapshot) -> None:
        """Queue the events at or after the position; a retention ``Reset`` for any seqs
        trimmed away before they were delivered."""
        for event in read.events:
            if event.seq < self._next_seq:
                continue
            if event.seq > self._next_seq:
                self._ready.append(lapped(self._epoch, self._next_seq - 1, event.seq))
            self._next_seq = event.seq + 1
            self._ready.append(event)
        if not read.events and self._next_seq <= read.last:
            # nothing retained after the position although later seqs exist
            self._ready.append(lapped(self._epoch, self._next_seq - 1, read.first))
            self._next_seq = read.last + 1

    def _size_reads(self, events: Sequence[LogEvent]) -> None:
        """The next catching-up read: about ``READ_BYTES`` of events the size of these."""
        self._count = read_count(self._ctx.policy.read_batch, events)
        self._sized = True

    async def _read_news(self) -> None:
        """The watcher has seen something this follower has not (a newer seq than the cache
        holds, a new epoch, the end): read it from Redis; if the read shows nothing new and the
        watcher saw nothing more meanwhile (a stale hint), wait for the watcher instead."""
        watch = self._watch
        hint = self._hint()
        self._seen_version = watch.version
        read = await self._reread()
        if self._nothing_new(read) and self._hint() == hint:
            await watch.notifier.wait()
            return
        self._pending = read

    def _hint(self) -> tuple[int, int, bool]:
        return self._watch.version, self._watch.last, self._watch.closed

    def _nothing_new(self, read: Snapshot) -> bool:
        return (
            read.epoch == self._epoch
            and read.state is StreamState.OPEN
            and self._next_seq > read.last
        )

    # -- reading Redis through outages ------------------------------------------------------
    async def _reread(self) -> Snapshot:
        """This follower's own read after its position, retried with backoff while Redis is
        unreachable (``BackendUnavailable`` after ``reconnect_timeout``). If the stream is
        gone, waits up to ``missing_timeout`` for a new history (``StreamNotFound`` after
        that, or at once if the follower had seen the stream closed: it expired)."""
        outage = Outage(self._ctx.policy.reconnect_timeout)
        delays = self._ctx.policy.backoff.delays()
        missing_since: float | None = None
        while True:
            self._check_alive()
            before = (self._watch.version, self._watch.last)
            try:
                read = await self._ctx.read(
                    self._keys, self._epoch, self._next_seq - 1, self._count
                )
            except REDIS_ERRORS as exc:
                if outage.fail():
                    raise translate(exc) from exc
                await self._pause(next(delays))
                continue
            outage.end()
            if read is not None:
                return read
            missing_since = await self._await_recreation(missing_since, before)

    def _check_alive(self) -> None:
        if self._ctx.is_closed():
            raise LogError("the event log was closed while following")
        if self._watch.error is not None:
            raise self._watch.error

    async def _await_recreation(self, since: float | None, before: tuple[int, int]) -> float:
        """The stream is gone: watch for its re-creation, and wait for the watcher to see
        something (bounded by ``missing_timeout`` from ``since``). Returns ``since``."""
        if self._seen_closed:
            raise StreamNotFound(self._stream)  # it was closed, and has expired
        now = time.monotonic()
        if since is None:
            await self._ctx.watcher.missing(self._watch)  # watch for re-creation from seq 0
            return now
        remaining = since + self._ctx.policy.missing_timeout - now
        if remaining <= 0:
            raise StreamNotFound(self._stream)
        if (self._watch.version, self._watch.last) == before:
            await self._pause(remaining)
        return since

    async def _pause(self, seconds: float) -> None:
        """Sleep up to ``seconds``, waking early if the watcher notifies (the log closed, the
        watcher gave up, or it saw the stream change)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._watch.notifier.wait()
