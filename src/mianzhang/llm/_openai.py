"""Provider for any OpenAI-compatible upstream (OpenAI, vLLM, Ollama, llama.cpp, LiteLLM).

One connection pool per upstream (keep-alive connections reused across generations). Streamed
chunks are passed through: each upstream ``data:`` payload is parsed once (to read the text,
reasoning, tool calls, finish reason and usage) and handed on as its original JSON text in
:attr:`Chunk.raw`, never re-serialised. Reasoning deltas of the servers that stream them
(``delta.reasoning_content``: vLLM, DeepSeek, SGLang, llama.cpp; ``delta.reasoning``:
OpenRouter, Ollama) become :attr:`Chunk.reasoning`; the raw text still carries them.

The HTTP client (the fast httptools pool, or httpx for a ``transport`` or an environment
proxy) is :class:`~mianzhang.llm._http_upstream.UpstreamHTTP`, shared with the ``anthropic``
provider.

Errors are translated (see :mod:`mianzhang._errors`): a non-2xx status becomes
:class:`UpstreamStatusError` (retryable per :func:`retryable_status`, with ``retry_after``),
a failure to connect or send :class:`UpstreamConnectError`, a stream that breaks off before
``[DONE]`` (or a finish reason) :class:`UpstreamProtocolError`, an ``{"error": ...}`` payload
inside the stream a non-retryable :class:`UpstreamError`.

Closing the iterator closes the upstream response: the HTTP/1.1 connection, not fully read,
is closed rather than returned to the pool, so the upstream sees the disconnect at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import orjson

from .._errors import UpstreamError, UpstreamProtocolError
from .._sse import ServerSentEvent
from ._http_upstream import ClientKind, HTTPProvider, UpstreamHTTP
from ._types import ChatRequest, Chunk, Usage

__all__ = ["OpenAIProvider"]


def _usage(value: Any) -> Usage | None:
    if not isinstance(value, dict):
        return None
    prompt = value.get("prompt_tokens")
    completion = value.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return Usage(prompt, completion)


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _delta_fields(delta: dict[str, Any]) -> dict[str, Any]:
    """The :class:`Chunk` fields of one choice's ``delta``."""
    calls = delta.get("tool_calls")
    role = delta.get("role")
    return {
        "text": _str(delta.get("content")),
        "role": role if isinstance(role, str) else None,
        "tool_calls": calls if isinstance(calls, list) and calls else None,
        # vLLM, DeepSeek, SGLang, llama.cpp: reasoning_content; OpenRouter, Ollama: reasoning
        "reasoning": _str(delta.get("reasoning_content")) or _str(delta.get("reasoning")),
    }


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
    fields: dict[str, Any] = {}
    choices = obj.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    if isinstance(choice, dict):
        delta = choice.get("delta")
        if isinstance(delta, dict):
            fields = _delta_fields(delta)
        reason = choice.get("finish_reason")
        fields["finish_reason"] = reason if isinstance(reason, str) else None
    return Chunk(usage=_usage(obj.get("usage")), raw=data, **fields)


def _is_done(event: ServerSentEvent) -> bool:
    """The end of an OpenAI stream: ``data: [DONE]``."""
    return isinstance(event.data, str) and event.data == "[DONE]"


class OpenAIProvider(HTTPProvider):
    """Streams ``POST {base_url}/chat/completions`` from one OpenAI-compatible upstream.

    ``api_key`` is sent as a bearer token when given. ``include_usage`` asks the upstream for
    a final usage chunk (``stream_options.include_usage``); turn it off for upstreams that
    reject ``stream_options``. ``transport`` replaces the network (tests; implies httpx).
    ``client`` picks the HTTP client (:mod:`._http_upstream`): ``"auto"`` uses httpx when a
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
        self.include_usage = include_usage
        http = UpstreamHTTP(
            base_url, request_headers, connect_timeout, max_connections, transport, client
        )
        super().__init__(http)

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

    async def stream(self, model: str, request: ChatRequest) -> AsyncIterator[Chunk]:
        done = finished = False
        events = self._events("/chat/completions", self._body(model, request), last=_is_done)
        async with contextlib.aclosing(events):
            async for event in events:
                if _is_done(event):
                    done = True
                elif event.data:
                    chunk = parse_chunk(event.data)
                    finished = finished or chunk.finish_reason is not None
                    yield chunk
        if not done and not finished:
            raise UpstreamProtocolError(f"upstream {self.base_url} ended the stream before [DONE]")
