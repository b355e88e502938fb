"""``sse_starlette.sse`` of sse-starlette 3.7.1, on mianzhang's response engine.

Every public name of the module: :class:`EventSourceResponse` (the 14 constructor arguments in
their order, with 3.7.1's defaults and checks), :class:`SendTimeoutError`, :class:`AppStatus`,
:class:`ServerSentEvent`, :func:`ensure_bytes` and the ``Content*`` type aliases.

What a stream guarantees is mianzhang's (``mianzhang._responses``): a disconnect cancels the
iterator at once, a send blocked ``send_timeout`` seconds ends the stream, a failure after the
headers ends it with an ``error`` event, shutdown drains it without patching uvicorn (see
:class:`AppStatus`), a ``HEAD`` gets the headers only, a WebSocket scope is denied with the
response. Each departure from 3.7.1, and why, is in docs/migrating-from-sse-starlette.md.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Coroutine, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from starlette.background import BackgroundTask
from starlette.types import Message, Scope

from ..._errors import SendTimeout
from ..._responses import (
    DEFAULT_MAX_BUFFER,
    DEFAULT_OPEN_TIMEOUT,
    DEFAULT_SEND_TIMEOUT,
    StreamSupervisor,
)
from ..._responses import EventSourceResponse as _EventSourceResponse
from ..._responses._content import iterate
from ..._responses._response import Waitable
from ._app_status import AppStatus
from .event import ServerSentEvent, ensure_bytes

__all__ = [
    "AppStatus",
    "AsyncContentStream",
    "Content",
    "ContentStream",
    "EventSourceResponse",
    "SendTimeoutError",
    "ServerSentEvent",
    "SyncContentStream",
    "collapse_excgroups",
    "ensure_bytes",
]

logger = logging.getLogger(__name__)

SendTimeoutError = SendTimeout
"""Raised by a response made with ``raise_errors=True`` when a send blocks longer than
``send_timeout`` (sse-starlette raises it always; mianzhang ends the stream quietly)."""

Content = str | bytes | dict[str, Any] | ServerSentEvent | Any
SyncContentStream = Iterator[Content]
AsyncContentStream = AsyncIterable[Content]
ContentStream = AsyncContentStream | SyncContentStream

_SEPARATORS = (None, "\r\n", "\r", "\n")


@contextlib.contextmanager
def collapse_excgroups() -> Iterator[None]:
    """Re-raise an exception group of one exception (nested or not) as that exception, as
    sse-starlette's helper (``sse_starlette._utils``) does around its task group."""
    try:
        yield
    except BaseException as exc:
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        raise exc


class EventSourceResponse(_EventSourceResponse):
    """sse-starlette 3.7.1's ``EventSourceResponse``: the same arguments, positionally and by
    keyword, with its defaults (``ping`` 15 s, ``sep`` ``\\r\\n``, ``cleanup_timeout`` 30 s)
    and its checks (``ValueError`` for a bad ``sep``, a negative ``shutdown_grace_period`` or
    ``cleanup_timeout``; ``TypeError``/``ValueError`` for a bad ``ping``).

    ``send_timeout`` defaults to mianzhang's 30 s (``None`` restores no limit);
    ``raise_errors=True`` is the one switch to 3.7.1's error behaviour (a failure after the
    headers and a send timeout propagate). ``body_iterator`` is the content as an async
    iterator, as in 3.7.1.
    """

    DEFAULT_PING_INTERVAL: ClassVar[int] = 15
    DEFAULT_SEPARATOR: ClassVar[str] = "\r\n"
    DEFAULT_CLEANUP_TIMEOUT: ClassVar[float] = 30.0

    def __init__(
        self,
        content: ContentStream,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str = "text/event-stream",
        background: BackgroundTask | None = None,
        ping: int | float | None = None,
        sep: str | None = None,
        ping_message_factory: Callable[[], ServerSentEvent] | None = None,
        data_sender_callable: Callable[[], Coroutine[None, None, None]] | None = None,
        send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
        client_close_handler_callable: Callable[[Message], Awaitable[None]] | None = None,
        shutdown_event: Waitable | None = None,
        shutdown_grace_period: float = 0,
        cleanup_timeout: float | None = DEFAULT_CLEANUP_TIMEOUT,
        *,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        open_timeout: float = DEFAULT_OPEN_TIMEOUT,
        supervisor: StreamSupervisor | None = None,
        raise_errors: bool = False,
    ) -> None:
        if sep not in _SEPARATORS:
            raise ValueError(f"sep must be one of: \\r\\n, \\r, \\n, got: {sep!r}")
        self.body_iterator = iterate(content)
        super().__init__(
            self.body_iterator,
            status_code,
            headers,
            media_type,
            background,
            self.DEFAULT_PING_INTERVAL if ping is None else ping,
            sep or self.DEFAULT_SEPARATOR,
            ping_message_factory,
            data_sender_callable,
            send_timeout,
            client_close_handler_callable,
            shutdown_event,
            shutdown_grace_period,
            cleanup_timeout,
            max_buffer=max_buffer,
            open_timeout=open_timeout,
            supervisor=supervisor,
            raise_errors=raise_errors,
        )

    def enable_compression(self, force: bool = False) -> None:
        """As in 3.7.1: SSE is never compressed (a compressor would buffer the events)."""
        raise NotImplementedError("Compression is not supported for SSE streams.")

    def supervisor_for(self, scope: Scope) -> StreamSupervisor:
        """The response's or the app's supervisor, else ``AppStatus``'s for this event loop;
        ``AppStatus.should_exit`` reaches it either way."""
        return AppStatus.supervisor_for(super().supervisor_for(scope))

    def ping_chunk(self) -> bytes:
        """3.7.1's heartbeat text, ``: ping - <UTC time>`` and a blank line, or what
        ``ping_message_factory`` returns (through :func:`ensure_bytes`). Sent after ``ping``
        idle seconds (3.7.1 sends it every ``ping`` seconds, even while data flows)."""
        factory = self.ping_message_factory
        if factory is not None:
            return ensure_bytes(factory(), self.sep)
        now = datetime.now(UTC)
        return ServerSentEvent(comment=f"ping - {now}", sep=self.sep).encode()

    def reconnect_chunk(self, retry_ms: int) -> bytes:
        """A drain's farewell: a bare ``retry:`` field, which no client dispatches as an event
        (3.7.1 sends nothing), so the reconnects of many clients spread out."""
        return f"retry: {retry_ms}{self.sep}{self.sep}".encode()
