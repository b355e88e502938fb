"""The HTTP side shared by the providers that stream from an upstream API (``openai``,
``anthropic``): one client per upstream, error translation, error bodies, draining.

Two HTTP clients, chosen by ``client=``:

* ``"fast"`` — :class:`~mianzhang.llm._upstream.UpstreamPool`, HTTP/1.1 on asyncio protocols
  with httptools' C parser. The default: httpx + h11 parse in pure Python and were most of
  the gateway's CPU per streamed token and about half a millisecond of its time to first token.
* ``"httpx"`` — ``httpx.AsyncClient``: needed for an injected ``transport`` (tests use
  ``httpx.MockTransport``) and for upstreams reached through an HTTP proxy from the
  environment (``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` not bypassed by ``NO_PROXY``),
  which the fast client does not speak. ``"auto"`` (default) picks httpx in those two cases
  and the fast client otherwise.

Errors are the gateway's: a failure to connect or send is :class:`UpstreamConnectError` (or
:class:`UpstreamTimeout`), a body that breaks off :class:`UpstreamProtocolError`, a non-2xx
status :class:`UpstreamStatusError` (:meth:`UpstreamHTTP.status_error`: retryable per
:func:`retryable_status`, with ``retry_after``). Connecting (and waiting for a pooled
connection) is bounded by ``connect_timeout``; reading is not (the gateway's first-token and
stall timeouts bound it).
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Final, Literal, Protocol
from urllib.parse import urlsplit

import httpx
import orjson

from .._errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from .._sse import ServerSentEvent, SSEDecoder
from ._retry import parse_retry_after, retryable_status
from ._upstream import UpstreamPool

__all__ = [
    "MAX_EVENT",
    "ClientKind",
    "HTTPProvider",
    "UpstreamBody",
    "UpstreamHTTP",
    "drain",
    "environment_proxy",
]

MAX_ERROR_BODY: Final = 8192
MAX_EVENT: Final = 4 * 1024 * 1024
_MAX_DRAIN: Final = 64 * 1024
_DRAIN_TIMEOUT: Final = 1.0

ClientKind = Literal["auto", "fast", "httpx"]


def error_message(status: int, body: bytes) -> str:
    """``upstream HTTP {status}: {message}`` from an error body (OpenAI's and Anthropic's
    ``{"error": {"message": ...}}``, a string ``error``, or the start of the text)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        err = parsed.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return f"upstream HTTP {status}: {err['message']}"
        if isinstance(err, str):
            return f"upstream HTTP {status}: {err}"
    text = body.decode("utf-8", "replace").strip()
    return f"upstream HTTP {status}" + (f": {text[:200]}" if text else "")


async def drain(body: AsyncIterator[bytes]) -> None:
    """Read what follows the end of a stream (normally just the end of the chunked body) so
    the connection returns to the pool; bounded in bytes and time, else it is closed instead."""
    size = 0
    with contextlib.suppress(TimeoutError, UpstreamError):
        async with asyncio.timeout(_DRAIN_TIMEOUT):
            async for part in body:
                size += len(part)
                if size > _MAX_DRAIN:
                    return


def environment_proxy(url: str) -> str | None:
    """The HTTP proxy the environment sets for ``url`` (``<scheme>_proxy``, ``all_proxy``),
    unless ``no_proxy`` exempts its host (``*``, the host, or a parent domain)."""
    proxies = urllib.request.getproxies()
    parts = urlsplit(url)
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy:
        return None
    host = (parts.hostname or "").lower()
    for entry in proxies.get("no", "").split(","):
        name = entry.strip().lower().lstrip(".")
        if name.startswith("*."):
            name = name[2:]
        name = name.split(":")[0] if name.count(":") == 1 else name  # host:port
        if name == "*" or (name and (host == name or host.endswith("." + name))):
            return None
    return proxy


class UpstreamBody(Protocol):
    """A response of either client: status, headers (lower-case names), the body as
    ``async for`` raising :class:`UpstreamError`s; always ``aclose`` it."""

    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    def __aiter__(self) -> AsyncIterator[bytes]: ...
    async def aclose(self) -> None: ...


def _translated(exc: httpx.TransportError, url: str, *, reading: bool) -> UpstreamError:
    """The gateway's error for an httpx failure talking to ``url``: a timeout is
    :class:`UpstreamTimeout`; another failure :class:`UpstreamProtocolError` while ``reading``
    the body (it broke off), else :class:`UpstreamConnectError` (connecting or sending)."""
    name = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeout(f"upstream {url}: {name}")
    if reading:
        return UpstreamProtocolError(f"upstream {url} broke off the stream: {name}: {exc}")
    return UpstreamConnectError(f"upstream {url}: {name}: {exc}")


class _HttpxResponse:
    """An ``httpx.Response`` seen as an :class:`UpstreamBody` (httpx errors translated)."""

    def __init__(self, response: httpx.Response, url: str) -> None:
        self._response = response
        self._body = response.aiter_bytes()
        self._url = url
        self.status = response.status_code
        self.headers: Mapping[str, str] = response.headers

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await anext(self._body)
        except httpx.TransportError as exc:
            raise _translated(exc, self._url, reading=True) from exc

    async def aclose(self) -> None:
        await self._response.aclose()


class UpstreamHTTP:
    """The HTTP client of one upstream at ``base_url`` (module docstring), sending
    ``headers`` with every request. ``client="fast"`` with a ``transport`` is a
    ``ValueError``. :meth:`aclose` closes every pooled connection."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        connect_timeout: float,
        max_connections: int,
        transport: httpx.AsyncBaseTransport | None,
        client: ClientKind,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if client == "fast" and transport is not None:
            raise ValueError("client='fast' cannot use an httpx transport")
        if client == "auto":
            use_httpx = transport is not None or environment_proxy(self.base_url) is not None
            client = "httpx" if use_httpx else "fast"
        self.client: ClientKind = client
        self._pool: UpstreamPool | None = None
        self._client: httpx.AsyncClient | None = None
        if client == "fast":
            self._pool = UpstreamPool(
                self.base_url,
                headers=headers,
                max_connections=max_connections,
                keepalive_expiry=30.0,
                connect_timeout=connect_timeout,
            )
        else:
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=dict(headers),
                timeout=httpx.Timeout(
                    None, connect=connect_timeout, write=connect_timeout, pool=connect_timeout
                ),
                limits=httpx.Limits(
                    max_connections=max_connections,
                    max_keepalive_connections=max_connections,
                    keepalive_expiry=30.0,
                ),
                transport=transport,
            )

    async def post(self, path: str, body: bytes) -> UpstreamBody:
        """POST ``body`` to ``path``; the response once its status and headers arrived."""
        if self._pool is not None:
            return await self._pool.request("POST", path, body)
        if self._client is None:  # unreachable: one of the two is always set
            raise UpstreamConnectError(f"upstream {self.base_url}: no client")
        http_request = self._client.build_request("POST", path, content=body)
        try:
            response = await self._client.send(http_request, stream=True)
        except httpx.TransportError as exc:
            raise _translated(exc, self.base_url, reading=False) from exc
        return _HttpxResponse(response, self.base_url)

    @staticmethod
    async def status_error(response: UpstreamBody) -> UpstreamStatusError:
        """The error for a non-2xx ``response`` (its body read, up to 8 KiB)."""
        body = bytearray()
        async for part in response:
            body += part
            if len(body) >= MAX_ERROR_BODY:
                break
        data = bytes(body[:MAX_ERROR_BODY])
        return UpstreamStatusError(
            response.status,
            error_message(response.status, data),
            retryable=retryable_status(response.status, response.headers),
            retry_after=parse_retry_after(response.headers),
            body=data.decode("utf-8", "replace"),
        )

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
        if self._client is not None:
            await self._client.aclose()


class HTTPProvider:
    """What the providers streaming SSE from an upstream API share: their :class:`UpstreamHTTP`
    (``base_url`` without its trailing slash; ``client`` the kind in use), :meth:`_events`
    and :meth:`aclose`."""

    def __init__(self, http: UpstreamHTTP) -> None:
        self._http = http
        self.base_url = self._http.base_url
        self.client: ClientKind = self._http.client

    async def _events(
        self, path: str, body: bytes, *, last: Callable[[ServerSentEvent], bool]
    ) -> AsyncGenerator[ServerSentEvent, None]:
        """POST ``body`` to ``path`` and yield the SSE events of the response; a status other
        than 200 raises :class:`UpstreamStatusError`. Once the consumer has taken an event
        for which ``last(event)`` is true, the rest of the body is drained (so the
        connection can be pooled) and the iteration ends; otherwise it ends with the body.
        The response is closed in ``finally``: closing the iterator early (wrap it in
        ``contextlib.aclosing``) closes the connection, so the upstream sees it at once."""
        response = await self._http.post(path, body)
        try:
            if response.status != 200:
                raise await self._http.status_error(response)
            decoder = SSEDecoder(MAX_EVENT)
            chunks = aiter(response)
            async for raw in chunks:
                for event in decoder.decode(raw):
                    yield event
                    if last(event):
                        await drain(chunks)
                        return
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        """Close every pooled connection to the upstream."""
        await self._http.aclose()
