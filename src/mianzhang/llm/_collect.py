"""A whole generation read from the log, for answers that are not streamed (``stream: false``).

:func:`collect` follows a generation's log stream from its first event to its end, as a
reader (so the producer runner sees a reader and does not abandon it), and gives each gateway
event, in order, to a collector (``AnthropicMessageCollector.add``, ...). A stream that ends
without a terminal event (its producer died) ends with ``Cancelled("interrupted")``, as every
surface reader ends it (``_reader.py``): a collector always sees exactly one terminal event.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import aclosing

from ..log import EventLog, LogEvent
from ._canonical import StartRecord, parse_event
from ._types import Cancelled, Failed, Finished, GenEvent, Timings, Usage

__all__ = ["collect"]

_TERMINAL = (Finished, Failed, Cancelled)


async def collect(log: EventLog, stream: str, add: Callable[[GenEvent], None]) -> None:
    """Give every gateway event of generation ``stream`` to ``add`` until its terminal event
    (see the module docstring). Raises ``StreamNotFound`` if there is no such stream."""
    async with aclosing(log.follow(stream)) as items:
        async for item in items:
            if not isinstance(item, LogEvent):
                continue  # a reset: what was trimmed is gone, the rest still follows
            event = parse_event(item.event, item.data)
            if isinstance(event, StartRecord):
                event = event.started
            if event is None:
                continue
            add(event)
            if isinstance(event, _TERMINAL):
                return
    add(Cancelled("interrupted", Usage(), Timings(None, 0.0, 0), partial=False))
