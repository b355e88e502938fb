"""A fake Anthropic Messages API upstream (raw ASGI, run as a real uvicorn process).

``POST /v1/messages`` answers by the request's ``model``:

* a name of :data:`tests.llm._anthropic_fixtures.STREAMS` (``text``, ``tool_use``,
  ``thinking``, ``max_tokens``, ``stop_sequence``): that recorded-shape stream, each event
  written separately and the first one split across two writes;
* ``error-mid``: a stream that reports ``overloaded_error`` in an ``error`` event after text;
* ``truncated``: a stream whose connection ends before ``message_delta``;
* ``status-<code>``: that HTTP status with Anthropic's error body (429 adds
  ``retry-after: 3``, 529 ``x-should-retry: true``);
* ``slow``: text deltas every 20 ms, up to 1500 of them, until the client disconnects.

``GET /_requests`` returns every request: its headers (``x-api-key``, ``anthropic-version``),
body, whether it completed and whether the client disconnected before the end.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson

from tests.e2e.apps._asgi import (
    Receive,
    Scope,
    Send,
    lifespan,
    read_body,
    send_json,
    wait_disconnect,
)
from tests.llm._anthropic_fixtures import ERROR_MID_STREAM, STREAMS, Event, sse, text

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class FakeAnthropic:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        body = await read_body(receive)
        if scope["path"] == "/_requests":
            await send_json(send, 200, {"requests": self.requests}, [])
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        entry: dict[str, Any] = {
            "path": scope["path"],
            "headers": headers,
            "body": orjson.loads(body),
            "completed": False,
            "disconnected": False,
        }
        self.requests.append(entry)
        watcher = asyncio.ensure_future(wait_disconnect(receive))
        try:
            await self._answer(entry, send, watcher)
            entry["completed"] = True
        except ConnectionError:
            entry["disconnected"] = True
        finally:
            watcher.cancel()
            with contextlib.suppress(BaseException):
                await watcher

    async def _answer(
        self, entry: dict[str, Any], send: Send, watcher: asyncio.Future[None]
    ) -> None:
        model = str(entry["body"].get("model"))
        if model.startswith("status-"):
            status = int(model.removeprefix("status-"))
            error = {"type": _ERROR_TYPES.get(status, "api_error"), "message": f"fake {status}"}
            extra = {429: [(b"retry-after", b"3")], 529: [(b"x-should-retry", b"true")]}
            await send_json(send, status, {"type": "error", "error": error}, extra.get(status, []))
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream; charset=utf-8")],
            }
        )
        if model == "slow":
            await self._slow(send, watcher)
            return
        events: list[Event] = {
            "error-mid": ERROR_MID_STREAM,
            "truncated": text("cut", "off")[:5],
        }.get(model) or STREAMS[model]
        first = sse(events[:1])
        parts = [first[:20], first[20:], *(sse([e]) for e in events[1:])]
        for part in parts:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def _slow(self, send: Send, watcher: asyncio.Future[None]) -> None:
        events = text("x")[:3]
        await send({"type": "http.response.body", "body": sse(events), "more_body": True})
        delta = sse(text("tick")[3:4])
        for _ in range(1500):
            done, _ = await asyncio.wait({watcher}, timeout=0.02)
            if done:
                raise ConnectionError("the client disconnected")
            await send({"type": "http.response.body", "body": delta, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


app = FakeAnthropic()
