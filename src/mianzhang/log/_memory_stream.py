"""One stream of the memory log: its ring of events, state, idempotency keys and lease.

Pure bookkeeping, no I/O and no timers of its own (the log owns those).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from ._common import new_epoch
from ._fanout import Fanout
from ._protocol import LogEvent, StreamInfo, StreamState, format_id

if TYPE_CHECKING:
    from ._memory_leases import MemoryLease

__all__ = ["MemoryStream"]


class MemoryStream:
    """One stream's history: a ring of at most ``max_events`` events (a list that grows to
    ``max_events`` and then wraps), so the event with seq ``s`` is at ``(s - 1) % cap``."""

    __slots__ = (
        "created",
        "deleted",
        "epoch",
        "expires_at",
        "expiry",
        "keys",
        "last",
        "lease",
        "max_events",
        "meta",
        "name",
        "notifier",
        "readers",
        "ring",
        "state",
        "ttl_after_close",
    )

    def __init__(
        self,
        name: str,
        *,
        max_events: int | None,
        ttl_after_close: float | None,
        meta: dict[str, str],
        created: float,
    ) -> None:
        self.name = name
        self.epoch = new_epoch()
        self.state = StreamState.OPEN
        self.created = created
        self.max_events = max_events
        self.ttl_after_close = ttl_after_close
        self.meta = meta
        self.ring: list[LogEvent] = []
        self.last = 0
        self.readers = 0
        self.notifier = Fanout()  # wakes waiters, serves parked readers (``_fanout``)
        self.deleted = False
        self.expires_at: float | None = None  # monotonic deadline once closed with a ttl
        self.expiry: asyncio.TimerHandle | None = None
        self.keys: dict[str, tuple[int, float]] = {}  # idempotency key -> (seq, deadline)
        self.lease: MemoryLease | None = None  # the producer's lease (``_memory_leases.py``)

    @property
    def first(self) -> int | None:
        """Seq of the oldest retained event, ``None`` if empty."""
        if not self.ring:
            return None
        return self.last - len(self.ring) + 1

    def at(self, seq: int) -> LogEvent:
        cap = self.max_events
        return self.ring[(seq - 1) % cap if cap else seq - 1]

    def push(self, event: LogEvent) -> None:
        cap = self.max_events
        if cap is None or len(self.ring) < cap:
            self.ring.append(event)
        else:
            self.ring[(event.seq - 1) % cap] = event
        self.last = event.seq

    def add(self, data: str, event: str | None) -> None:
        """Append one event (the stream is open) and wake its followers. ``append``'s own
        copy of these lines is inlined (its hot path); this is for everything else."""
        seq = self.last + 1
        self.push(LogEvent(format_id(self.epoch, seq), seq, data, event))
        self.notifier.notify()

    def seen(self, key: str, now: float) -> int | None:
        """The seq appended under idempotency ``key``, if still remembered."""
        entry = self.keys.get(key)
        return entry[0] if entry is not None and entry[1] > now else None

    def remember(self, key: str, seq: int, deadline: float, limit: int) -> None:
        keys = self.keys
        keys.pop(key, None)
        keys[key] = (seq, deadline)
        now = time.monotonic()
        while keys:  # oldest first: drop expired keys and those beyond ``limit``
            oldest = next(iter(keys))
            if len(keys) <= limit and keys[oldest][1] > now:
                break
            del keys[oldest]

    def info(self) -> StreamInfo:
        return StreamInfo(
            name=self.name,
            epoch=self.epoch,
            state=self.state,
            created=self.created,
            last_id=format_id(self.epoch, self.last) if self.last else None,
            length=len(self.ring),
            max_events=self.max_events,
            ttl_after_close=self.ttl_after_close,
            meta=dict(self.meta),
        )
