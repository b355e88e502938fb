"""The shared base of the streaming responses: options, headers, the ASGI entry point, HEAD.

* Options are checked when the response is made (``ValueError``), never once it streams.
* Headers: ``Cache-Control: no-cache`` and ``X-Accel-Buffering: no`` by default, the caller's
  headers replacing them case-insensitively (one header per name), never ``Connection``
  (hop-by-hop, forbidden in HTTP/2). A class's default headers are encoded once; each response
  still owns its list (Starlette's ``MutableHeaders`` edits it in place).
* ``HEAD`` gets the headers (the very list a ``GET`` gets) and an empty body; the iterator and
  ``data_sender_callable`` are not started, the background task runs.
* A WebSocket scope is denied with the response itself (the ASGI "websocket denial response"
  extension, as Starlette's responses and sse-starlette 3.7 do): the same messages, typed
  ``websocket.http.response.*``; ``websocket.disconnect`` counts as the peer gone.
* Any other request runs one :class:`~._engine.Stream`, with the response's supervisor or the
  one published in lifespan state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, ClassVar, Protocol

from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from ._content import Content
from ._engine import Stream
from ._supervisor import StreamSupervisor, supervisor_of

__all__ = [
    "DEFAULT_MAX_BUFFER",
    "DEFAULT_OPEN_TIMEOUT",
    "DEFAULT_PING",
    "DEFAULT_SEND_TIMEOUT",
    "Waitable",
    "_StreamingBase",
]

DEFAULT_PING = 15.0
DEFAULT_SEND_TIMEOUT = 30.0
DEFAULT_MAX_BUFFER = 64 * 1024
DEFAULT_OPEN_TIMEOUT = 0.25


class Waitable(Protocol):
    """A ``shutdown_event``: anything with an awaitable ``wait()`` (asyncio, anyio events)."""

    async def wait(self) -> Any: ...


class _StreamingBase(Response):
    """What every streaming response shares: its options, its headers, the ASGI entry point.

    Subclasses say how items become bytes (:meth:`encode_item`) and what the heartbeat, the
    in-band error and the reconnect hint look like; the engine (``_engine.Stream``) does the
    rest. Options are validated here, when the response is made, not once it streams
    (``ValueError``; ``TypeError`` for a ``ping`` that is not a number).

    ``open_timeout`` (seconds) is how long the headers wait for a first item (an iterator that
    fails before it gets an HTTP error); ``0`` sends them right after the iterator's first
    step, for a stream whose route already checked it (a quiet stream answers at once).
    ``cleanup_timeout`` (seconds, ``None``: no limit) bounds the wait for the iterator's and the
    helpers' cleanup once the stream stops them; ``raise_errors`` is the one switch to the
    peers' error behaviour: a failure after the headers aborts the body and propagates from the
    response, instead of a final in-band error and a clean end.
    """

    media_type: str | None = None
    default_ping: ClassVar[float] = 0.0
    sse_items: ClassVar[bool] = False  # ServerSentEvent items encode themselves

    def __init__(
        self,
        content: Content,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
        *,
        ping: float | None = None,
        send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        open_timeout: float = DEFAULT_OPEN_TIMEOUT,
        client_close_handler_callable: Callable[[Message], Awaitable[None]] | None = None,
        data_sender_callable: Callable[[], Coroutine[None, None, None]] | None = None,
        shutdown_event: Waitable | None = None,
        shutdown_grace_period: float = 0.0,
        supervisor: StreamSupervisor | None = None,
        cleanup_timeout: float | None = None,
        raise_errors: bool = False,
    ) -> None:
        self.content = content
        self.status_code = status_code
        self.media_type = self.media_type if media_type is None else media_type
        self.background = background
        self.ping_interval = self.default_ping if ping is None else ping
        if send_timeout is not None and send_timeout <= 0:
            raise ValueError("send_timeout must be positive or None")
        if shutdown_grace_period < 0:
            raise ValueError("shutdown_grace_period must be >= 0")
        if cleanup_timeout is not None and cleanup_timeout < 0:
            raise ValueError("cleanup_timeout must be >= 0 or None")
        if max_buffer <= 0:
            raise ValueError("max_buffer must be positive")
        self.send_timeout = send_timeout
        self.cleanup_timeout = cleanup_timeout
        self.raise_errors = raise_errors
        self.max_buffer = max_buffer
        self.open_timeout = open_timeout
        self.client_close_handler_callable = client_close_handler_callable
        self.data_sender_callable = data_sender_callable
        self.shutdown_event = shutdown_event
        self.shutdown_grace_period = shutdown_grace_period
        self.supervisor = supervisor
        self._set_headers(headers)

    def _set_headers(self, headers: Mapping[str, str] | None) -> None:
        default = self._default_raw_headers
        raw = None
        if default is not None and self.media_type == type(self).media_type:
            # the usual case: the class's own headers, encoded once (the list stays per
            # response: Starlette's MutableHeaders edits it in place), plus the caller's
            raw = list(default) if headers is None else _with_headers(default, headers)
        if raw is None:
            self.init_headers(self._stream_headers(headers))
        else:
            self.raw_headers = raw

    _default_raw_headers: ClassVar[tuple[tuple[bytes, bytes], ...] | None] = None

    @property
    def ping_interval(self) -> float:
        """Seconds of silence before a heartbeat; ``0`` disables it. Checked on assignment:
        ``TypeError`` for a non-number, ``ValueError`` for a negative one."""
        return self._ping_interval

    @ping_interval.setter
    def ping_interval(self, value: float) -> None:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise TypeError(f"ping interval must be int or float, not {type(value).__name__}")
        if value < 0:
            raise ValueError("ping interval must be >= 0 (0 disables the heartbeat)")
        self._ping_interval = float(value)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._default_raw_headers = None
        if cls.init_headers is Response.init_headers:  # a subclass's own init_headers runs
            probe = object.__new__(cls)
            probe.status_code = 200
            probe.init_headers(probe._stream_headers(None))
            cls._default_raw_headers = tuple(probe.raw_headers)

    def _stream_headers(self, headers: Mapping[str, str] | None) -> dict[str, str]:
        """Defaults, then the caller's headers replacing them case-insensitively (one header
        per name), never ``Connection``."""
        merged = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        if headers:
            for key, value in headers.items():
                name = key.lower()
                if name == "connection":
                    continue  # hop-by-hop; forbidden in HTTP/2 (RFC 9113 §8.2.2)
                merged[name] = value
        return merged

    # -- what subclasses define -----------------------------------------------------------------
    def encode_item(self, item: Any) -> bytes:
        raise NotImplementedError

    def ping_chunk(self) -> bytes | None:
        return None

    def error_chunk(self, exc: BaseException) -> bytes | None:
        """Bytes that tell the client the stream failed, or None to abort the body instead."""
        return None

    def reconnect_chunk(self, retry_ms: int) -> bytes | None:
        return None

    # -- ASGI -----------------------------------------------------------------------------------
    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Coroutine[Any, Any, None]:
        # a plain method returning the stream's coroutine: no frame of its own stays alive
        # for the whole stream (about 0.3 KiB per idle connection)
        if scope["type"] == "websocket":
            send = _websocket_denial(send)
        elif scope.get("method") == "HEAD":
            return self._head(send)
        return Stream(self, scope, receive, send, self.supervisor_for(scope)).run()

    def supervisor_for(self, scope: Scope) -> StreamSupervisor | None:
        """The supervisor a stream of this response registers with: the one given to the
        response, else the one the app published in lifespan state, else none."""
        return self.supervisor or supervisor_of(scope)

    async def _head(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        if self.background is not None:
            await self.background()


_OWN = frozenset({"content-type", "content-length", "connection", "cache-control"})


def _with_headers(
    default: tuple[tuple[bytes, bytes], ...], headers: Mapping[str, str]
) -> list[tuple[bytes, bytes]] | None:
    """The class's headers with the caller's added before the content type, as Starlette's
    ``init_headers`` would list them; ``None`` when the caller's replace one of the class's
    (or name the content type, length or connection): then ``init_headers`` decides."""
    names = {name.lower() for name in headers}
    if not default or default[-1][0] != b"content-type":
        return None
    if names & _OWN or any(name == key.decode() for key, _ in default for name in names):
        return None
    raw = list(default[:-1])  # the last is the content type
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append(default[-1])
    return raw


def _websocket_denial(send: Send) -> Send:
    """``send`` for a WebSocket scope: the HTTP response messages become the extension's
    ``websocket.http.response.*`` (a server without the extension refuses them)."""

    async def denial_send(message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start" or kind == "http.response.body":
            message = {**message, "type": "websocket." + kind}
        await send(message)

    return denial_send
