"""A resuming Server-Sent Events client on httpx (async and sync).

::

    async with mianzhang.client.connect(url, last_event_id=saved) as stream:
        async for event in stream:
            if isinstance(event, ResetEvent):
                ...  # history was lost: resync
            handle(event)  # a mianzhang.ServerSentEvent
            saved = stream.last_event_id

    with mianzhang.client.connect_sync(url) as stream:
        for event in stream: ...

Reconnects like a browser's ``EventSource`` (``Last-Event-ID``, the server's ``retry:``),
with exponential backoff and jitter on consecutive failures, a heartbeat-aware read timeout,
a bound on event size, typed ``reset`` events and server-initiated ``reconnect``. Errors are
:class:`~mianzhang.ClientError` subclasses (``ResponseRejected``, ``ReconnectExhausted``) or
:class:`~mianzhang.EventTooLarge`.
"""

from ._async import EventStream, connect
from ._backoff import Backoff
from ._events import RECONNECT_EVENT, RESET_EVENT, ResetEvent
from ._sync import SyncEventStream, connect_sync

__all__ = [
    "RECONNECT_EVENT",
    "RESET_EVENT",
    "Backoff",
    "EventStream",
    "ResetEvent",
    "SyncEventStream",
    "connect",
    "connect_sync",
]
