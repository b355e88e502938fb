"""Pure ASGI middleware of the server (no BaseHTTPMiddleware: it breaks streaming).

* :class:`RequestContext`: a request id (the client's ``X-Request-ID`` if sane, else new) in
  the response headers and in every log record of the request, with the stream id once a
  route names it (``X-Stream-Id``); one access-log record per request when it ends.
* :class:`StreamSlots`: every streaming response (``text/event-stream``, NDJSON) takes one of
  the caller's concurrent-stream slots when it starts; a caller over its cap gets a 429 with
  ``Retry-After`` and RateLimit headers instead of the stream, and the refused stream's
  producer is told the client left. The slot is released when the response ends, however.
* :class:`BodyDeadline`: a request body that stays silent for ``timeout`` seconds ends the
  request (408), so a slow-POST cannot hold a worker forever.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import secrets
import time
from collections.abc import Awaitable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._errors import RateLimited, RequestTimeout
from ._errors import render
from ._limits import RateLimiter, StreamLease

__all__ = ["BodyDeadline", "RequestContext", "RequestIds", "StreamSlots", "request_ids_var"]


class RequestIds:
    """The ids a request's log records carry: its request id, and its stream id once a route
    names it. One object per request in one context variable: naming the stream later is an
    attribute set, not a second variable (each ``ContextVar.set`` copies the context's
    mapping, about 200 bytes per open stream)."""

    __slots__ = ("request", "stream")

    def __init__(self, request: str) -> None:
        self.request = request
        self.stream: str | None = None


request_ids_var: contextvars.ContextVar[RequestIds | None] = contextvars.ContextVar(
    "mianzhang_request_ids", default=None
)

access_logger = logging.getLogger("mianzhang.access")
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_STREAMING = (b"text/event-stream", b"application/x-ndjson")


def _header(headers: Any, name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return bytes(value)
    return None


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope["headers"], b"x-request-id")
        text = incoming.decode("latin-1") if incoming else ""
        request_id = text if _SANE_ID.match(text) else secrets.token_hex(8)
        ids = RequestIds(request_id)
        token = request_ids_var.set(ids)
        started = time.perf_counter()
        answer = _Answer(ids, send)
        try:
            await self.app(scope, receive, answer.send)
        finally:
            if access_logger.isEnabledFor(logging.INFO):
                _log_access(scope, answer, started)
            request_ids_var.reset(token)


class _Answer:
    """What one request's response says, as it goes to the server: its status and body size
    (for the access log), with the request id added to its head. Body messages pass
    unchanged: it declares so (``passthrough_send``, ``body_written``), so a stream may write
    its pushed bytes directly to the connection
    (``mianzhang._responses._transport.direct_body``) and tell it their size."""

    __slots__ = ("_send", "ids", "sent", "status")

    @property
    def passthrough_send(self) -> Send:
        """The server's ``send`` this one wraps."""
        return self._send

    def body_written(self, size: int) -> None:
        """``size`` body bytes were written to the connection around :meth:`send`."""
        self.sent += size

    def __init__(self, ids: RequestIds, send: Send) -> None:
        self.ids = ids
        self._send = send
        self.status = 0
        self.sent = 0

    def send(self, message: Message) -> Awaitable[None]:
        # a plain method returning the server's awaitable: no coroutine of its own per
        # message (a stream sends one per event)
        kind = message["type"]
        if kind == "http.response.body":
            self.sent += len(message.get("body", b""))
        elif kind == "http.response.start":
            self.status = message["status"]
            headers = list(message.get("headers", []))
            headers.append((b"x-request-id", self.ids.request.encode()))
            stream = _header(headers, b"x-stream-id")
            if stream:
                self.ids.stream = stream.decode("latin-1")
            message = {**message, "headers": headers}
        return self._send(message)


def _log_access(scope: Scope, answer: _Answer, started: float) -> None:
    duration_ms = round((time.perf_counter() - started) * 1000, 2)
    access_logger.info(
        "%s %s %s %.1fms",
        scope["method"],
        scope["path"],
        answer.status,
        duration_ms,
        extra={
            "method": scope["method"],
            "path": scope["path"],
            "status": answer.status,
            "bytes": answer.sent,
            "duration_ms": duration_ms,
            "client": scope["client"][0] if scope.get("client") else None,
        },
    )


class StreamSlots:
    def __init__(self, app: ASGIApp, limiter: RateLimiter | None = None) -> None:
        self.app = app
        self.limiter = limiter

    def _limiter(self, scope: Scope) -> RateLimiter | None:
        if self.limiter is not None:
            return self.limiter
        app = scope.get("app")
        services = getattr(getattr(app, "state", None), "services", None)
        return getattr(services, "limiter", None)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        limiter = self._limiter(scope) if scope["type"] == "http" else None
        if limiter is None or not limiter.settings.concurrent_streams:
            return self.app(scope, receive, send)  # no frame of ours kept per request
        return self._guarded(limiter, scope, receive, send)

    async def _guarded(
        self, limiter: RateLimiter, scope: Scope, receive: Receive, send: Send
    ) -> None:
        lease: StreamLease | None = None
        refused = False

        async def guarded_receive() -> Message:
            if refused:
                return {"type": "http.disconnect"}
            return await receive()

        async def guarded_send(message: Message) -> None:
            nonlocal lease, refused
            if refused:
                return
            if message["type"] == "http.response.start":
                content_type = _header(message.get("headers", []), b"content-type") or b""
                if content_type.startswith(_STREAMING):
                    try:
                        lease = await limiter.stream(_caller(scope))
                    except RateLimited as exc:
                        refused = True
                        await _send_429(scope, send, exc)
                        return
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        finally:
            if lease is not None:
                await lease.release()


def _caller(scope: Scope) -> str:
    principal = (scope.get("state") or {}).get("principal")
    if principal is not None and principal.kind != "anonymous":
        return f"{principal.kind}:{principal.name}"
    client = scope.get("client")
    return f"ip:{client[0] if client else 'unknown'}"


async def _send_429(scope: Scope, send: Send, exc: RateLimited) -> None:
    """The refusal of a stream over the caller's limit, in the request's error shape."""

    async def nothing() -> Message:
        return {"type": "http.disconnect"}

    await render(scope, exc)(scope, nothing, send)


class BodyDeadline:
    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return self.app(scope, receive, send)  # no frame of ours kept per request
        return self._deadline(scope, receive, send)

    async def _deadline(self, scope: Scope, receive: Receive, send: Send) -> None:
        body_done = False

        async def deadline_receive() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout(self.timeout):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(f"request body silent for {self.timeout:.0f}s") from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        await self.app(scope, deadline_receive, send)
