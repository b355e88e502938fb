"""How items become bytes: Server-Sent Events, NDJSON and plain text.

Each format also says what its heartbeat, its in-band error and its drain farewell look like:

* SSE: ``: ping`` (or ``ping_message_factory``), an ``error`` event with a JSON
  ``{"type", "message"}`` body, a ``reconnect`` event with a ``retry:`` hint;
* NDJSON: an empty line (only when ``ping`` is given), a last line ``{"error": {...}}``, no
  farewell (the body ends after what was produced);
* text: no heartbeat, no in-band error (a failure aborts the body: the client sees it
  truncated), no farewell.

An in-band error never carries a traceback, and the message of an exception that is not
mianzhang's own is replaced (it may carry internals).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, ClassVar

import orjson
from starlette.background import BackgroundTask
from starlette.types import Message

from .._errors import MianzhangError
from .._sse import ServerSentEvent, _check_sep, encode_comment
from ._content import Content
from ._response import (
    DEFAULT_MAX_BUFFER,
    DEFAULT_OPEN_TIMEOUT,
    DEFAULT_PING,
    DEFAULT_SEND_TIMEOUT,
    Waitable,
    _StreamingBase,
)
from ._supervisor import StreamSupervisor

__all__ = ["EventSourceResponse", "NDJSONResponse", "TextStreamResponse"]


def _public_error(exc: BaseException) -> dict[str, str]:
    """The in-band description of a failure: type and message, never a traceback. Messages of
    foreign exceptions may carry internals, so only mianzhang's own are shown."""
    if isinstance(exc, MianzhangError):
        return {"type": type(exc).__name__, "message": str(exc)}
    return {"type": "internal_error", "message": "the stream failed on the server"}


class EventSourceResponse(_StreamingBase):
    """A ``text/event-stream`` response (Server-Sent Events) from an iterable of events.

    Items may be :class:`ServerSentEvent` (sent as encoded), ``dict`` (keyword arguments of
    ``ServerSentEvent``), ``bytes`` (sent as they are, already encoded) or anything else (its
    ``str`` as the ``data`` of one event). Accepts sse-starlette 3.x's arguments with the same
    meaning; the differences are listed in ``docs/migrating-from-sse-starlette.md``.

    ``ping`` seconds (default 15; ``0`` disables) of silence produce one heartbeat, by default
    the comment ``: ping``; ``ping_message_factory`` returns a custom :class:`ServerSentEvent`.
    ``cleanup_timeout`` seconds (default ``None``: no limit) bound the iterator's cleanup once
    the stream stops it; ``raise_errors=True`` lets a failure after the headers propagate (the
    body is aborted) instead of ending the stream with an ``error`` event.
    """

    media_type = "text/event-stream"
    default_ping: ClassVar[float] = DEFAULT_PING
    sse_items: ClassVar[bool] = True

    def __init__(
        self,
        content: Content,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str = "text/event-stream",
        background: BackgroundTask | None = None,
        ping: float | None = None,
        sep: str | None = None,
        ping_message_factory: Callable[[], ServerSentEvent] | None = None,
        data_sender_callable: Callable[[], Coroutine[None, None, None]] | None = None,
        send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
        client_close_handler_callable: Callable[[Message], Awaitable[None]] | None = None,
        shutdown_event: Waitable | None = None,
        shutdown_grace_period: float = 0.0,
        cleanup_timeout: float | None = None,
        *,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        open_timeout: float = DEFAULT_OPEN_TIMEOUT,
        supervisor: StreamSupervisor | None = None,
        raise_errors: bool = False,
    ) -> None:
        self.sep = _check_sep(sep)
        self.ping_message_factory = ping_message_factory
        self._ping_bytes = encode_comment("ping", self.sep)
        super().__init__(
            content,
            status_code,
            headers,
            media_type,
            background,
            ping=ping,
            send_timeout=send_timeout,
            max_buffer=max_buffer,
            open_timeout=open_timeout,
            client_close_handler_callable=client_close_handler_callable,
            data_sender_callable=data_sender_callable,
            shutdown_event=shutdown_event,
            shutdown_grace_period=shutdown_grace_period,
            supervisor=supervisor,
            cleanup_timeout=cleanup_timeout,
            raise_errors=raise_errors,
        )

    def encode_item(self, item: Any) -> bytes:
        if type(item) is bytes:
            return item
        if isinstance(item, ServerSentEvent):
            return item.encode()
        if isinstance(item, dict):
            return ServerSentEvent(**{"sep": self.sep, **item}).encode()
        if isinstance(item, bytes | bytearray | memoryview):
            return bytes(item)
        return ServerSentEvent(str(item), sep=self.sep).encode()

    def ping_chunk(self) -> bytes:
        if self.ping_message_factory is not None:
            return self.ping_message_factory().encode()
        return self._ping_bytes

    def error_chunk(self, exc: BaseException) -> bytes:
        return ServerSentEvent(_public_error(exc), event="error", sep=self.sep).encode()

    def reconnect_chunk(self, retry_ms: int) -> bytes:
        return ServerSentEvent("", event="reconnect", retry=retry_ms, sep=self.sep).encode()


class NDJSONResponse(_StreamingBase):
    """``application/x-ndjson``: each item as one line of JSON (orjson); ``bytes`` and ``str``
    items are sent as they are (they must carry their own newline).

    No heartbeat by default (``ping`` seconds send an empty line, which NDJSON readers that
    skip blank lines accept). A failure after the headers becomes a last line
    ``{"error": {"type", "message"}}``; a drain ends the body after what was produced.
    """

    media_type = "application/x-ndjson"

    def encode_item(self, item: Any) -> bytes:
        if isinstance(item, bytes):
            return item
        if isinstance(item, str):
            return item.encode()
        return orjson.dumps(item, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS)

    def ping_chunk(self) -> bytes:
        return b"\n"

    def error_chunk(self, exc: BaseException) -> bytes:
        return orjson.dumps({"error": _public_error(exc)}, option=orjson.OPT_APPEND_NEWLINE)


class TextStreamResponse(_StreamingBase):
    """Chunked ``text/plain; charset=utf-8`` from ``str`` (UTF-8) or ``bytes`` items.

    Plain text has no in-band error: a failure after the headers ends the connection without
    the terminating chunk, so the client sees a truncated body rather than a clean end.
    """

    media_type = "text/plain"

    def encode_item(self, item: Any) -> bytes:
        if isinstance(item, bytes):
            return item
        return str(item).encode()
