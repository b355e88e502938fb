"""How items become bytes: every kind of item from every kind of iterable, the SSE
separator everywhere, NDJSON lines and text chunks (with each format's in-band error)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import orjson
import pytest

from mianzhang import (
    EventSourceResponse,
    JSONServerSentEvent,
    NDJSONResponse,
    ServerSentEvent,
    SSEEncodeError,
    StreamError,
    StreamSupervisor,
    TextStreamResponse,
)
from tests.responses._peer import FakeClient, decode, serve, streaming

ITEMS: list[Any] = [
    ServerSentEvent("one", event="e", id="1", retry=10),
    JSONServerSentEvent({"k": "v"}),
    {"data": "two", "event": "d", "id": 2},
    {"data": {"json": True}},
    "three",
    "multi\nline",
    b"data: raw\n\n",
    bytearray(b"data: ba\n\n"),
    memoryview(b"data: mv\n\n"),
    42,
]


EXPECTED_ITEMS = (
    b"id: 1\nevent: e\ndata: one\nretry: 10\n\n"
    b'data: {"k":"v"}\n\n'
    b"id: 2\nevent: d\ndata: two\n\n"
    b'data: {"json":true}\n\n'
    b"data: three\n\n"
    b"data: multi\ndata: line\n\n"
    b"data: raw\n\n"
    b"data: ba\n\n"
    b"data: mv\n\n"
    b"data: 42\n\n"
)


def _sync_gen() -> Iterator[Any]:
    yield from ITEMS


async def _async_gen() -> AsyncIterator[Any]:
    for item in ITEMS:
        yield item


class _AsyncIterable:
    def __aiter__(self) -> AsyncIterator[Any]:
        return _async_gen()


CONTENTS: dict[str, Callable[[], Any]] = {
    "list": lambda: list(ITEMS),
    "tuple": lambda: tuple(ITEMS),
    "sync generator": _sync_gen,
    "sync iterator": lambda: iter(ITEMS),
    "async generator": _async_gen,
    "async iterable": _AsyncIterable,
}


@pytest.mark.parametrize("kind", list(CONTENTS))
async def test_items_of_every_kind_from_every_kind_of_iterable(kind: str) -> None:
    client = FakeClient()
    await serve(EventSourceResponse(CONTENTS[kind](), ping=0), client)
    assert client.body == EXPECTED_ITEMS
    assert client.ended
    assert [e.data for e in decode(client.body)][:4] == ["one", '{"k":"v"}', "two", '{"json":true}']


@pytest.mark.parametrize("sep", ["\n", "\r", "\r\n"])
async def test_sep_applies_to_str_dict_ping_and_final_events(sep: str) -> None:
    items: list[Any] = ["a\nb", {"data": "c", "event": "x"}, ServerSentEvent("own", sep=sep)]
    client = FakeClient()
    await serve(EventSourceResponse(items, sep=sep), client)
    s = sep.encode()
    assert client.body == (
        b"data: a"
        + s
        + b"data: b"
        + s
        + s
        + b"event: x"
        + s
        + b"data: c"
        + s
        + s
        + b"data: own"
        + s
        + s
    )
    assert [(e.event, e.data) for e in decode(client.body)] == [
        ("message", "a\nb"),
        ("x", "c"),
        ("message", "own"),
    ]


async def test_sep_is_used_by_the_heartbeat_and_the_reconnect_event() -> None:
    supervisor = StreamSupervisor(retry_ms=(7, 7), hook_signals=False)
    go = asyncio.Event()

    async def gen() -> AsyncIterator[str]:
        yield "a"
        await go.wait()
        await asyncio.Event().wait()

    client = FakeClient()
    response = EventSourceResponse(gen(), sep="\r\n", ping=0.05, supervisor=supervisor)
    async with streaming(response, client) as task:
        await client.wait_body(b": ping\r\n")
        supervisor.drain()
        await task
    assert client.body.endswith(b"event: reconnect\r\ndata: \r\nretry: 7\r\n\r\n")


def test_bad_sep_is_rejected() -> None:
    with pytest.raises(SSEEncodeError):
        EventSourceResponse([], sep="\t")
    assert issubclass(SSEEncodeError, ValueError)


async def test_ndjson_lines() -> None:
    items: list[Any] = [{"a": 1}, [1, 2], "raw line\n", b'{"b":2}\n', 3, None, {1: "x"}]
    client = FakeClient()
    await serve(NDJSONResponse(items), client)
    assert client.body == b'{"a":1}\n[1,2]\nraw line\n{"b":2}\n3\nnull\n{"1":"x"}\n'
    assert client.ended


async def test_ndjson_error_line_after_headers() -> None:
    async def gen() -> AsyncIterator[Any]:
        yield {"n": 1}
        raise StreamError("upstream vanished")

    client = FakeClient()
    await serve(NDJSONResponse(gen()), client)
    lines = client.body.splitlines()
    assert [orjson.loads(line) for line in lines] == [
        {"n": 1},
        {"error": {"type": "StreamError", "message": "upstream vanished"}},
    ]
    assert client.ended


async def test_ndjson_masks_foreign_errors_and_raises_before_first_byte() -> None:
    async def later() -> AsyncIterator[Any]:
        yield {"n": 1}
        raise KeyError("internal key")

    client = FakeClient()
    await serve(NDJSONResponse(later()), client)
    last = orjson.loads(client.body.splitlines()[-1])
    assert last["error"]["type"] == "internal_error"
    assert b"internal key" not in client.body

    async def first() -> AsyncIterator[Any]:
        raise KeyError("at once")
        yield  # pragma: no cover

    with pytest.raises(KeyError):
        await serve(NDJSONResponse(first()), FakeClient())


async def test_ndjson_heartbeat_is_an_empty_line_only_when_asked() -> None:
    client = FakeClient()

    async def gen() -> AsyncIterator[Any]:
        yield {"a": 1}
        await client.wait_for(lambda: client.body.endswith(b"}\n\n"))
        yield {"b": 2}

    await serve(NDJSONResponse(gen(), ping=0.05), client)
    assert client.body.startswith(b'{"a":1}\n\n')
    assert [orjson.loads(x) for x in client.body.splitlines() if x] == [{"a": 1}, {"b": 2}]
    assert NDJSONResponse([]).ping_interval == 0


async def test_text_stream() -> None:
    client = FakeClient()
    await serve(TextStreamResponse(["héllo ", b"bytes ", 7]), client)
    assert client.body == "héllo bytes 7".encode()
    assert client.ended


async def test_text_stream_error_after_headers_aborts_the_body() -> None:
    async def gen() -> AsyncIterator[str]:
        yield "partial"
        raise StreamError("cut")

    client = FakeClient()
    await serve(TextStreamResponse(gen()), client)
    assert client.body == b"partial"
    assert not client.ended  # no terminating chunk: the client sees a truncated body
