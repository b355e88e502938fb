"""Provider for upstreams that speak Anthropic's Messages API (Anthropic, LiteLLM, vLLM,
llama.cpp, another mianzhang's ``/v1/messages``).

``stream`` translates the gateway's OpenAI-shaped request into a Messages request
(:mod:`._anthropic_body`), sends ``POST {base_url}/messages`` with ``stream: true`` and the
headers ``x-api-key`` and ``anthropic-version``, and turns the SSE events into chunks
(:mod:`._anthropic_stream`): text, reasoning (thinking), OpenAI tool-call deltas with a
stable ``index``, usage (``message_start`` + ``message_delta``) and the finish reason.
``base_url`` ends with the API version, as the ``openai`` provider's does
(``https://api.anthropic.com/v1``).

The HTTP client is the ``openai`` provider's (:mod:`._http_upstream`): the fast httptools
pool by default, httpx for an injected ``transport`` or an environment proxy. Errors are translated
the same way: a non-2xx status is :class:`UpstreamStatusError` (429, 529 and 5xx retryable,
``x-should-retry`` and ``retry-after`` honoured), an ``error`` event inside the stream
:class:`UpstreamStreamError` (retryable when its type stands for 429/5xx/529: an
``overloaded_error`` before the first token is retried), a request with no Messages API
equivalent :class:`UpstreamUnsupported` (nothing sent), a stream that ends before
``message_stop`` (and before any ``stop_reason``) :class:`UpstreamProtocolError`.

Closing the iterator closes the upstream response: a connection not read to its end is
closed, never pooled, so the upstream sees the disconnect at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Final

import httpx
import orjson

from .._errors import UpstreamProtocolError
from ._anthropic_body import messages_body
from ._anthropic_stream import MessagesStreamParser
from ._http_upstream import ClientKind, HTTPProvider, UpstreamHTTP
from ._provider import Provider
from ._types import ChatRequest, Chunk

__all__ = ["ANTHROPIC_VERSION", "AnthropicProvider"]

ANTHROPIC_VERSION: Final = "2023-06-01"
"""The ``anthropic-version`` header sent by default (the Messages API's current version)."""


class AnthropicProvider(HTTPProvider):
    """Streams ``POST {base_url}/messages`` from one Messages API upstream.

    ``api_key`` is sent as ``x-api-key``; ``anthropic_version`` as ``anthropic-version``;
    ``headers`` are added to every request (``anthropic-beta``, ...). ``default_max_tokens``
    is sent when a request has no ``max_tokens`` (the Messages API requires one). ``client``,
    ``transport``, ``connect_timeout`` and ``max_connections`` are as for
    :class:`~mianzhang.llm.OpenAIProvider`.
    """

    kind = "anthropic"

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        anthropic_version: str = ANTHROPIC_VERSION,
        headers: Mapping[str, str] | None = None,
        default_max_tokens: int = 4096,
        connect_timeout: float = 10.0,
        max_connections: int = 1000,
        transport: httpx.AsyncBaseTransport | None = None,
        client: ClientKind = "auto",
    ) -> None:
        if default_max_tokens < 1:
            raise ValueError("default_max_tokens must be at least 1")
        request_headers = {
            "accept": "text/event-stream",
            "content-type": "application/json",
            "anthropic-version": anthropic_version,
        }
        if api_key:
            request_headers["x-api-key"] = api_key
        request_headers.update(headers or {})
        self.default_max_tokens = default_max_tokens
        http = UpstreamHTTP(
            base_url, request_headers, connect_timeout, max_connections, transport, client
        )
        super().__init__(http)

    async def stream(self, model: str, request: ChatRequest) -> AsyncIterator[Chunk]:
        body = messages_body(model, request, default_max_tokens=self.default_max_tokens)
        parser = MessagesStreamParser()
        events = self._events("/messages", orjson.dumps(body), last=lambda _: parser.done)
        async with contextlib.aclosing(events):
            async for event in events:
                for chunk in parser.feed(event.event, event.data) if event.data else ():
                    yield chunk
        if not parser.done and not parser.finished:
            raise UpstreamProtocolError(
                f"upstream {self.base_url} ended the stream before message_stop"
            )


if TYPE_CHECKING:  # the provider contract, checked by mypy
    _provider: Provider = AnthropicProvider("http://upstream.test/v1")
