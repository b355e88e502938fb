"""sse-starlette 3.x compatibility: the same constructor parameters in the same order, the same
bytes for the same content, and the documented header differences."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.to_thread
import pytest
import sse_starlette
import sse_starlette.event
from starlette.types import Message

from mianzhang import EventSourceResponse, JSONServerSentEvent, ServerSentEvent
from tests.responses._peer import FakeClient, decode, serve

SSE_STARLETTE_ARGS = [
    "content",
    "status_code",
    "headers",
    "media_type",
    "background",
    "ping",
    "sep",
    "ping_message_factory",
    "data_sender_callable",
    "send_timeout",
    "client_close_handler_callable",
    "shutdown_event",
    "shutdown_grace_period",
    "cleanup_timeout",
]


def test_constructor_parameters_match_sse_starlette_positionally() -> None:
    theirs = list(inspect.signature(sse_starlette.EventSourceResponse.__init__).parameters)[1:]
    ours = list(inspect.signature(EventSourceResponse.__init__).parameters)[1:]
    assert theirs == SSE_STARLETTE_ARGS
    assert ours[: len(theirs)] == theirs
    for name in ours[len(theirs) :]:  # our extras are keyword-only
        kind = inspect.signature(EventSourceResponse.__init__).parameters[name].kind
        assert kind is inspect.Parameter.KEYWORD_ONLY, name


async def _collect(response: Any) -> bytes:
    client = FakeClient()
    await serve(response, client)
    assert client.ended
    return client.body


def _both(sep: str) -> tuple[list[Any], list[Any]]:
    """The same content for both libraries (each with its own event class)."""
    common: list[Any] = [
        "plain",
        "multi\nline\r\nmixed\rends",
        "",
        b"data: pre-encoded\n\n",
        {"data": "d", "event": "e", "id": "7", "retry": 1500},
        {"data": "c", "comment": "note"},
        12.5,
    ]
    ours = [*common, ServerSentEvent("obj", event="o", id="i", sep=sep, comment="c1\nc2")]
    theirs = [
        *common,
        sse_starlette.ServerSentEvent("obj", event="o", id="i", sep=sep, comment="c1\nc2"),
    ]
    return ours, theirs


@pytest.mark.parametrize("sep", ["\n", "\r\n", "\r"])
async def test_same_bytes_as_sse_starlette_for_the_same_content(sep: str) -> None:
    ours_items, their_items = _both(sep)
    shutdown_ours, shutdown_theirs = anyio.Event(), anyio.Event()

    async def on_close(message: Message) -> None:
        return None

    async def sender() -> None:
        return None

    def args(items: list[Any], shutdown: anyio.Event) -> tuple[Any, ...]:
        # every sse-starlette 3.x parameter, positionally, in its order
        return (
            items,
            200,
            {"X-Custom": "1"},
            "text/event-stream",
            None,
            600,
            sep,
            None,
            sender,
            5.0,
            on_close,
            shutdown,
            0.5,
            10.0,
        )

    ours = await _collect(EventSourceResponse(*args(ours_items, shutdown_ours)))
    theirs = await _collect(sse_starlette.EventSourceResponse(*args(their_items, shutdown_theirs)))
    assert ours == theirs
    assert len(decode(ours)) == 8


async def test_same_bytes_as_sse_starlette_with_keywords_and_sync_generators() -> None:
    def gen() -> Iterator[Any]:
        yield {"data": "k", "id": "1"}
        yield "two"

    kwargs: dict[str, Any] = {"ping": 600, "sep": "\r\n", "send_timeout": 1.0}
    ours = await _collect(EventSourceResponse(content=gen(), **kwargs))
    theirs = await _collect(sse_starlette.EventSourceResponse(content=gen(), **kwargs))
    assert ours == theirs == b"id: 1\r\ndata: k\r\n\r\ndata: two\r\n\r\n"


def test_json_event_matches_sse_starlette() -> None:
    value = {"text": "héllo 世界", "n": [1, 2.5, None, True]}
    ours = JSONServerSentEvent(value, event="j", sep="\r\n").encode()
    theirs = sse_starlette.event.JSONServerSentEvent(value, event="j", sep="\r\n").encode()
    assert ours == theirs


async def test_documented_header_differences_from_sse_starlette() -> None:
    ours_client, theirs_client = FakeClient(), FakeClient()
    await serve(EventSourceResponse([]), ours_client)
    await serve(sse_starlette.EventSourceResponse([]), theirs_client)
    ours, theirs = dict(ours_client.headers), dict(theirs_client.headers)
    assert ours[b"content-type"] == theirs[b"content-type"]
    assert ours[b"x-accel-buffering"] == theirs[b"x-accel-buffering"] == b"no"
    assert theirs[b"connection"] == b"keep-alive" and b"connection" not in ours
    assert theirs[b"cache-control"] == b"no-store" and ours[b"cache-control"] == b"no-cache"
