"""Provider for any OpenAI-compatible upstream (OpenAI, vLLM, Ollama, llama.cpp, LiteLLM).

One connection pool per upstream (keep-alive connections reused across generations). Streamed
chunks are passed through: each upstream ``data:`` payload is parsed once (to read the text,
finish reason and usage) and handed on as its original JSON text in :attr:`Chunk.raw`, never
re-serialised.

Two HTTP clients, chosen by ``client=`` (see :class:`OpenAIProvider`):

* ``"fast"`` — :class:`~mianzhang.llm._upstream.UpstreamPool`, HTTP/1.1 on asyncio protocols
  with httptools' C parser. The default: httpx + h11 parse in pure Python and were most of
  the gateway's CPU per streamed token and about half a millisecond of its time to first token.
* ``"httpx"`` — ``httpx.AsyncClient``: needed for an injected ``transport`` (tests use
  ``httpx.MockTransport``) and for upstreams reached through an HTTP proxy from the
  environment (``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` not bypassed by ``NO_PROXY``),
  which the fast client does not speak. ``"auto"`` (default) picks httpx in those two cases
  and the fast client otherwise.

Errors are translated here (see :mod:`mianzhang._errors`): a non-2xx status becomes
:class:`UpstreamStatusError` (retryable per :func:`retryable_status`, with ``retry_after``),
a failure to connect or send :class:`UpstreamConnectError`, a stream that breaks off before
``[DONE]`` (or a finish reason) :class:`UpstreamProtocolError`, an ``{"error": ...}`` payload
inside the stream a non-retryable :class:`UpstreamError`.

Closing the iterator closes the upstream response: the HTTP/1.1 connection, not fully read,
is closed rather than returned to the pool, so the upstream sees the disconnect at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final, Literal, Protocol
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
from .._sse import SSEDecoder
from ._retry import parse_retry_after, retryable_status
from ._types import ChatRequest, Chunk, Usage
from ._upstream import UpstreamPool

__all__ = ["OpenAIProvider"]

_MAX_ERROR_BODY: Final = 8192
_MAX_EVENT: Final = 4 * 1024 * 1024
_MAX_DRAIN: Final = 64 * 1024
_DRAIN_TIMEOUT: Final = 1.0


def _error_message(status: int, body: bytes) -> str:
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


def _usage(value: Any) -> Usage | None:
    if not isinstance(value, dict):
        return None
    prompt = value.get("prompt_tokens")
    completion = value.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return Usage(prompt, completion)


def parse_chunk(data: str) -> Chunk:
    """A :class:`Chunk` for one upstream ``chat.completion.chunk`` payload (kept as ``raw``).

    Raises :class:`UpstreamError` for an ``{"error": ...}`` payload and
    :class:`UpstreamProtocolError` for anything that is not a JSON object.
    """
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UpstreamProtocolError(
            f"upstream sent a chunk that is not JSON: {data[:100]!r}"
        ) from exc
    if not isinstance(obj, dict):
        raise UpstreamProtocolError(f"upstream sent a chunk that is not an object: {data[:100]!r}")
    if obj.get("error") is not None:
        err = obj["error"]
        message = err.get("message") if isinstance(err, dict) else str(err)
        raise UpstreamError(f"upstream error in stream: {message}", retryable=False)
    text = ""
    finish: str | None = None
    role: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    choices = obj.get("choices")
    if isinstance(choices, list) and choices:
        choice = choices[0]
        if isinstance(choice, dict):
            delta = choice.get("delta")
            if isinstance(delta, dict):
                content = delta.get("content")
                if isinstance(content, str):
                    text = content
                role = delta.get("role") if isinstance(delta.get("role"), str) else None
                calls = delta.get("tool_calls")
                if isinstance(calls, list) and calls:
                    tool_calls = calls
            reason = choice.get("finish_reason")
            finish = reason if isinstance(reason, str) else None
    return Chunk(
        text=text,
        finish_reason=finish,
        usage=_usage(obj.get("usage")),
        raw=data,
        role=role,
        tool_calls=tool_calls,
    )


async def _drain(body: AsyncIterator[bytes]) -> None:
    """Read what follows ``[DONE]`` (normally just the end of the chunked body) so the
    connection returns to the pool; bounded in bytes and time, else it is closed instead."""
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


class _Response(Protocol):
    """What :meth:`OpenAIProvider.stream` needs of a response (both clients): status,
    headers (lower-case names), the body as ``async for`` raising :class:`UpstreamError`s."""

    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    def __aiter__(self) -> AsyncIterator[bytes]: ...
    async def aclose(self) -> None: ...


class _HttpxResponse:
    """An ``httpx.Response`` seen as a :class:`_Response` (httpx errors translated)."""

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
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"upstream {self._url}: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            raise UpstreamProtocolError(
                f"upstream {self._url} broke off the stream: {type(exc).__name__}: {exc}"
            ) from exc

    async def aclose(self) -> None:
        await self._response.aclose()


ClientKind = Literal["auto", "fast", "httpx"]


class OpenAIProvider:
    """Streams ``POST {base_url}/chat/completions`` from one OpenAI-compatible upstream.

    ``api_key`` is sent as a bearer token when given. ``include_usage`` asks the upstream for
    a final usage chunk (``stream_options.include_usage``); turn it off for upstreams that
    reject ``stream_options``. ``transport`` replaces the network (tests; implies httpx).
    ``client`` picks the HTTP client (module docstring): ``"auto"`` uses httpx when a
    ``transport`` is given or the environment routes ``base_url`` through a proxy, else the
    fast httptools client; ``"fast"`` and ``"httpx"`` force one (``"fast"`` with a
    ``transport`` is a ``ValueError``). Connecting (and waiting for a pooled connection) is
    bounded by ``connect_timeout``; reading is not (the gateway's first-token and stall
    timeouts bound it, so a slow upstream is cut at the gateway's terms).
    """

    kind = "openai"

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        include_usage: bool = True,
        connect_timeout: float = 10.0,
        max_connections: int = 1000,
        transport: httpx.AsyncBaseTransport | None = None,
        client: ClientKind = "auto",
    ) -> None:
        request_headers = {"accept": "text/event-stream", "content-type": "application/json"}
        if api_key:
            request_headers["authorization"] = f"Bearer {api_key}"
        request_headers.update(headers or {})
        self.base_url = base_url.rstrip("/")
        self.include_usage = include_usage
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
                headers=request_headers,
                max_connections=max_connections,
                keepalive_expiry=30.0,
                connect_timeout=connect_timeout,
            )
        else:
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=request_headers,
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

    def _body(self, model: str, request: ChatRequest) -> bytes:
        body: dict[str, Any] = dict(request.params)
        body["model"] = model
        body["messages"] = request.messages
        body["stream"] = True
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if self.include_usage:
            options = body.get("stream_options")
            body["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        return orjson.dumps(body)

    async def _send(self, body: bytes) -> _Response:
        """Send the request; the response once its status and headers arrived."""
        if self._pool is not None:
            return await self._pool.request("POST", "/chat/completions", body)
        assert self._client is not None
        http_request = self._client.build_request("POST", "/chat/completions", content=body)
        try:
            response = await self._client.send(http_request, stream=True)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"upstream {self.base_url}: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            raise UpstreamConnectError(
                f"upstream {self.base_url}: {type(exc).__name__}: {exc}"
            ) from exc
        return _HttpxResponse(response, self.base_url)

    async def stream(self, model: str, request: ChatRequest) -> AsyncIterator[Chunk]:
        response = await self._send(self._body(model, request))
        try:
            if response.status != 200:
                body = await self._read_error(response)
                raise UpstreamStatusError(
                    response.status,
                    _error_message(response.status, body),
                    retryable=retryable_status(response.status, response.headers),
                    retry_after=parse_retry_after(response.headers),
                    body=body[:_MAX_ERROR_BODY].decode("utf-8", "replace"),
                )
            decoder = SSEDecoder(_MAX_EVENT)
            finished = done = False
            chunks = aiter(response)
            async for raw in chunks:
                for event in decoder.decode(raw):
                    data = event.data
                    if data == "[DONE]":
                        done = True
                        break
                    if not data:
                        continue
                    chunk = parse_chunk(data)
                    if chunk.finish_reason is not None:
                        finished = True
                    yield chunk
                if done:
                    await _drain(chunks)
                    return
            if not finished:
                raise UpstreamProtocolError(
                    f"upstream {self.base_url} ended the stream before [DONE]"
                )
        finally:
            await response.aclose()

    async def _read_error(self, response: _Response) -> bytes:
        body = bytearray()
        async for part in response:
            body += part
            if len(body) >= _MAX_ERROR_BODY:
                break
        return bytes(body)

    async def aclose(self) -> None:
        """Close every pooled connection to the upstream."""
        if self._pool is not None:
            await self._pool.aclose()
        if self._client is not None:
            await self._client.aclose()
