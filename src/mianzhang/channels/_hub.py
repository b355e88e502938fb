"""Publish/subscribe channels: each channel is one event-log stream (``channel:{name}``).

Subscribers are readers of the log, so they get history and resume (``Last-Event-ID``) for
free, and a ``Reset`` when history they ask for was trimmed or lost. Publishing appends one
event; an ``idempotency_key`` makes a retried publish (same key, same channel, within
``idempotency_ttl``) store the event once and return the first publish's id, with
``Published.duplicate`` set.

Channels never close; their history is bounded by ``max_events`` (per-channel overrides by
glob pattern, first match wins).
"""

from __future__ import annotations

import fnmatch
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from .._sse import json_dumps
from ..log import EventLog, LogEvent, Reset, StreamInfo, format_id, parse_id

__all__ = ["ChannelHub", "Published", "channel_stream", "check_channel_name"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,199}$")
_EVENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


def check_channel_name(name: str) -> str:
    """``name`` if valid (letters, digits, ``_ . : / @ -``, at most 200, not starting with
    punctuation); ``ValueError`` otherwise."""
    if not _NAME.match(name):
        raise ValueError(
            f"invalid channel name {name!r}: use 1-200 of A-Z a-z 0-9 _ . : / @ -, "
            "starting with a letter or digit"
        )
    return name


def channel_stream(name: str) -> str:
    return f"channel:{name}"


@dataclass(frozen=True, slots=True)
class Published:
    """The outcome of a publish: the event's id in ``channel``.

    ``duplicate`` is ``True`` when an earlier publish under the same idempotency key already
    stored the event (nothing was appended; ``id`` is that publish's). Two retries racing
    each other both see ``False`` at worst; the event is stored once either way.
    """

    channel: str
    id: str
    duplicate: bool = False


class ChannelHub:
    """Channels on an :class:`~mianzhang.log.EventLog` (memory or Redis).

    Every instance sharing the log (Redis) sees every channel: a publish on one instance
    reaches subscribers on all of them, each exactly once (they are log readers). The hub
    keeps no per-subscriber state; its only memory is a bounded cache of channel names it
    has created (``known_cache``).
    """

    def __init__(
        self,
        log: EventLog,
        *,
        max_events: int = 1000,
        retention: Mapping[str, int] | None = None,
        idempotency_ttl: float = 86_400.0,
        known_cache: int = 10_000,
    ) -> None:
        if max_events < 1:
            raise ValueError("max_events must be >= 1")
        self.log = log
        self.max_events = max_events
        self.retention = dict(retention or {})
        self.idempotency_ttl = idempotency_ttl
        self._known: OrderedDict[str, None] = OrderedDict()
        self._known_cache = known_cache

    def max_events_for(self, channel: str) -> int:
        for pattern, limit in self.retention.items():
            if fnmatch.fnmatchcase(channel, pattern):
                return limit
        return self.max_events

    async def _ensure(self, channel: str) -> None:
        if channel in self._known:
            self._known.move_to_end(channel)
            return
        await self.log.create(channel_stream(channel), max_events=self.max_events_for(channel))
        self._remember(channel)

    def _remember(self, channel: str) -> None:
        self._known[channel] = None
        self._known.move_to_end(channel)
        if len(self._known) > self._known_cache:
            self._known.popitem(last=False)

    async def publish(
        self,
        channel: str,
        data: Any,
        *,
        event: str | None = None,
        idempotency_key: str | None = None,
    ) -> Published:
        """Append ``data`` (``str`` as is, anything else as JSON) to ``channel``."""
        check_channel_name(channel)
        if event is not None and not _EVENT.match(event):
            raise ValueError(f"invalid event type {event!r}: 1-64 of A-Z a-z 0-9 _ . : -")
        if idempotency_key is not None and not _KEY.match(idempotency_key):
            raise ValueError("idempotency key must be 1-200 printable ASCII characters")
        text = data if isinstance(data, str) else json_dumps(data)
        await self._ensure(channel)
        stream = channel_stream(channel)
        if idempotency_key is None:
            return Published(channel, await self.log.append(stream, text, event=event))
        before = await self.log.info(stream)
        event_id = await self.log.append(
            stream,
            text,
            event=event,
            idempotency_key=idempotency_key,
            idempotency_ttl=self.idempotency_ttl,
        )
        return Published(channel, event_id, _not_after(event_id, before))

    async def prepare(self, channel: str) -> StreamInfo:
        """Create ``channel`` if it is missing (never cached: a channel whose history was lost,
        e.g. by a Redis restart, is created again) and return its info."""
        check_channel_name(channel)
        info = await self.log.create(
            channel_stream(channel), max_events=self.max_events_for(channel)
        )
        self._remember(channel)
        return info

    async def start_after(self, channel: str, history: int) -> str | None:
        """Where a new subscriber (one with no ``Last-Event-ID``) starts following
        ``channel``: after this id, so that the last ``history`` retained events come first
        (``None``: from the oldest retained event). Creates the channel if it is missing
        (:meth:`prepare`), so followers can wait on it.
        """
        if history < 0:
            raise ValueError("history must be >= 0")
        info = await self.prepare(channel)
        if info.last_id is None:
            return None
        parsed = parse_id(info.last_id)
        if parsed is None:
            return None
        epoch, last = parsed
        first = last - info.length + 1
        start = max(last - history, first - 1)
        return format_id(epoch, start) if start >= 1 else None

    async def subscribe(
        self, channel: str, after: str | None = None, *, history: int = 0
    ) -> AsyncIterator[LogEvent | Reset]:
        """Events after ``after`` (resume), then live events, until the iterator is closed.

        Without ``after`` a subscriber starts at the live tail, preceded by the last
        ``history`` retained events (as Mercure and Centrifugo do: a new subscriber is not
        flooded with old notifications, and no ``reset`` is reported for history it never
        asked for). Events published between the look at the tail and the start of following
        are delivered, not skipped. With ``after`` naming lost history, a
        :class:`~mianzhang.log.Reset` comes first. A channel nobody has published to yet is
        created empty, so subscribers can wait on it. The subscription counts in
        :meth:`subscribers` while the iterator is open.
        """
        check_channel_name(channel)
        if history < 0:
            raise ValueError("history must be >= 0")
        if after is None:
            after = await self.start_after(channel, history)
        else:
            await self.prepare(channel)
        follower = self.log.follow(channel_stream(channel), after)
        try:
            async for item in follower:
                yield item
        finally:
            await follower.aclose()

    async def subscribers(self, channel: str) -> int:
        """Open subscriptions to ``channel`` on every instance sharing the log."""
        check_channel_name(channel)
        return await self.log.readers(channel_stream(channel))

    async def info(self, channel: str) -> StreamInfo | None:
        """The channel's stream info (``None`` if nobody published or subscribed yet)."""
        check_channel_name(channel)
        return await self.log.info(channel_stream(channel))


def _not_after(event_id: str, before: StreamInfo | None) -> bool:
    """``True`` if ``event_id`` was already in the stream described by ``before`` (same
    epoch, sequence not beyond its last event): the append was a remembered duplicate."""
    if before is None or before.last_id is None:
        return False
    new, old = parse_id(event_id), parse_id(before.last_id)
    if new is None or old is None or new[0] != old[0]:
        return False
    return new[1] <= old[1]
