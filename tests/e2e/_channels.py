"""Reading a channel in end-to-end tests."""

from __future__ import annotations

from mianzhang import ServerSentEvent
from mianzhang.client import connect

__all__ = ["read_until"]


async def read_until(
    url: str, until: str, *, params: dict[str, str] | None = None, after: str | None = None
) -> list[ServerSentEvent]:
    """Events of one connection (no reconnect) up to the one whose data is ``until``."""
    got: list[ServerSentEvent] = []
    stream = connect(url, params=params, last_event_id=after, max_reconnects=0, read_timeout=20)
    async with stream:
        async for event in stream:
            got.append(event)
            if event.data == until:
                break
    return got
