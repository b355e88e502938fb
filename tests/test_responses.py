"""Streaming responses (``mianzhang._responses``), driven in-process through hand-written ASGI
``receive``/``send`` callables (issue 2, "Responses").

Every wait is an awaited condition (``FakeClient.wait_for``) under ``asyncio.timeout``. Other
``asyncio.sleep`` calls never stand in for a condition: ``sleep(0)`` only lets the other tasks
take their turns, a few sleeps pace a generator on purpose (the silence a heartbeat needs, data
that keeps flowing), and one 0.2 s window watches that a stalled sync generator stays stalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import orjson
import pytest
import sse_starlette
import sse_starlette.event
from starlette.background import BackgroundTask
from starlette.types import Message, Scope

from mianzhang import (
    EventSourceResponse,
    JSONServerSentEvent,
    NDJSONResponse,
    ServerSentEvent,
    SSEDecoder,
    SSEEncodeError,
    StreamError,
    StreamSupervisor,
    TextStreamResponse,
)
from mianzhang._responses import SUPERVISOR_STATE_KEY, _StreamingBase

TIMEOUT = 5.0


# -- the hand-written ASGI peer ---------------------------------------------------------------
class FakeClient:
    """One HTTP request's ``receive``/``send``, recording what the response sends.

    * ``receive`` gives the request once, then waits for ``gone`` and says ``http.disconnect``
      (with ``disconnect_when_complete``, also once the body is complete, as uvicorn does).
    * ``gate``: while not set, body sends block (a reader that stopped reading); ``send_error``
      makes body sends raise instead.
    """

    def __init__(self, *, disconnect_when_complete: bool = False) -> None:
        self.messages: list[Message] = []
        self.gone = asyncio.Event()
        self.gate: asyncio.Event | None = None
        self.send_error: BaseException | None = None
        self.blocked_sends = 0
        self.on_body: Callable[[bytes], None] | None = None
        self._changed = asyncio.Event()
        self._request_given = False
        self.disconnect_when_complete = disconnect_when_complete

    async def receive(self) -> Message:
        if not self._request_given:
            self._request_given = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.body":
            if self.send_error is not None:
                raise self.send_error
            if self.gate is not None and not self.gate.is_set():
                self.blocked_sends += 1
                self._changed.set()
                await self.gate.wait()
        self.messages.append(message)
        if message["type"] == "http.response.body":
            if self.on_body is not None:
                self.on_body(message["body"])
            if not message.get("more_body", False) and self.disconnect_when_complete:
                self.gone.set()  # as uvicorn: receive() says http.disconnect once complete
                await asyncio.sleep(0)  # and the watcher runs before send returns
        self._changed.set()

    def disconnect(self) -> None:
        self.gone.set()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            self._changed.clear()
            await self._changed.wait()

    async def wait_body(self, needle: bytes) -> None:
        await self.wait_for(lambda: needle in self.body)

    @property
    def start(self) -> Message:
        starts = [m for m in self.messages if m["type"] == "http.response.start"]
        assert len(starts) == 1, self.messages
        return starts[0]

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(bytes(k), bytes(v)) for k, v in self.start["headers"]]

    @property
    def body_messages(self) -> list[Message]:
        return [m for m in self.messages if m["type"] == "http.response.body"]

    @property
    def body(self) -> bytes:
        return b"".join(m["body"] for m in self.body_messages)

    @property
    def ended(self) -> bool:
        """The body was terminated (``more_body`` False): the stream ended cleanly."""
        bodies = self.body_messages
        return bool(bodies) and not bodies[-1].get("more_body", False)


def http_scope(method: str = "GET", state: dict[str, Any] | None = None) -> Scope:
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": [],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }
    if state is not None:
        scope["state"] = state
    return scope


async def serve(response: Any, client: FakeClient, scope: Scope | None = None) -> None:
    """Run one response to its end (bounded)."""
    async with asyncio.timeout(TIMEOUT):
        await response(scope or http_scope(), client.receive, client.send)


@contextlib.asynccontextmanager
async def streaming(
    response: Any, client: FakeClient, scope: Scope | None = None
) -> AsyncIterator[asyncio.Task[None]]:
    """The response running in a task while the test talks to it; the task is always awaited."""
    task = asyncio.create_task(response(scope or http_scope(), client.receive, client.send))
    try:
        async with asyncio.timeout(TIMEOUT):
            yield task
    finally:
        if not task.done():
            task.cancel()
        await asyncio.wait((task,))


def decode(raw: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = decoder.decode(raw)
    decoder.close()
    return events


def datas(raw: bytes) -> list[str]:
    return [e.data for e in decode(raw)]


class Cleanup:
    """Records that a generator's ``finally`` ran (from any thread)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.produced = 0


async def endless(cleanup: Cleanup, first: Any = "a") -> AsyncIterator[Any]:
    """Yields ``first``, then waits forever; ``finally`` records the cleanup."""
    try:
        cleanup.produced += 1
        yield first
        await asyncio.Event().wait()
    finally:
        cleanup.done.set()


# -- headers -----------------------------------------------------------------------------------
EXPECTED_SSE_HEADERS = {
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
}


async def test_sse_headers_are_exactly_the_three() -> None:
    client = FakeClient()
    await serve(EventSourceResponse([]), client)
    assert client.start["status"] == 200
    assert sorted(client.headers) == sorted(EXPECTED_SSE_HEADERS)


@pytest.mark.parametrize("name", ["Connection", "connection", "CONNECTION"])
async def test_connection_header_is_never_sent_even_when_given(name: str) -> None:
    client = FakeClient()
    response = EventSourceResponse([], headers={name: "keep-alive", "X-Extra": "1"})
    await serve(response, client)
    assert sorted(client.headers) == sorted(EXPECTED_SSE_HEADERS | {(b"x-extra", b"1")})
    assert all(k != b"connection" for k, _ in client.headers)


async def test_caller_headers_replace_defaults_case_insensitively() -> None:
    client = FakeClient()
    response = EventSourceResponse(
        [], headers={"cache-control": "no-store", "X-Accel-Buffering": "yes"}
    )
    await serve(response, client)
    assert sorted(client.headers) == sorted(
        {
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-store"),
            (b"x-accel-buffering", b"yes"),
        }
    )


async def test_status_code_and_background_are_passed_through() -> None:
    ran: list[str] = []
    client = FakeClient()
    response = EventSourceResponse(
        ["x"], status_code=201, background=BackgroundTask(ran.append, "bg")
    )
    await serve(response, client)
    assert client.start["status"] == 201
    assert ran == ["bg"]


@pytest.mark.parametrize(
    ("cls", "content_type"),
    [
        (NDJSONResponse, b"application/x-ndjson"),
        (TextStreamResponse, b"text/plain; charset=utf-8"),
    ],
)
async def test_other_streams_headers(cls: type[_StreamingBase], content_type: bytes) -> None:
    client = FakeClient()
    await serve(cls([], headers={"Connection": "close"}), client)
    assert sorted(client.headers) == sorted(
        {
            (b"content-type", content_type),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        }
    )


async def test_head_sends_headers_and_empty_body_without_starting_the_iterator() -> None:
    started = False
    ran: list[str] = []

    async def never_ending() -> AsyncIterator[str]:
        nonlocal started
        started = True
        while True:
            yield "x"
            await asyncio.sleep(0)

    client = FakeClient()
    response = EventSourceResponse(never_ending(), background=BackgroundTask(ran.append, "bg"))
    await serve(response, client, http_scope("HEAD"))
    assert sorted(client.headers) == sorted(EXPECTED_SSE_HEADERS)
    assert client.body == b""
    assert client.ended
    assert not started
    assert ran == ["bg"]


# -- items of every kind -----------------------------------------------------------------------
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


@pytest.mark.parametrize(
    "kwargs",
    [{"ping": -1}, {"send_timeout": 0}, {"shutdown_grace_period": -1}, {"max_buffer": 0}],
)
def test_bad_options_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        EventSourceResponse([], **kwargs)


def test_bad_retry_range_is_rejected() -> None:
    with pytest.raises(ValueError):
        StreamSupervisor(retry_ms=(10, 5))
    with pytest.raises(ValueError):
        StreamSupervisor(retry_ms=(-1, 5))


# -- heartbeat ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["list", "async generator"])
async def test_no_heartbeat_between_quickly_produced_events(kind: str) -> None:
    async def burst() -> AsyncIterator[str]:
        for i in range(2000):
            yield f"e{i}"
            await asyncio.sleep(0)  # the producer awaits between events: the sender runs

    content: Any = [f"e{i}" for i in range(2000)] if kind == "list" else burst()
    client = FakeClient()
    await serve(EventSourceResponse(content, ping=0.05), client)
    assert b": ping" not in client.body
    assert datas(client.body) == [f"e{i}" for i in range(2000)]


async def test_no_heartbeat_while_data_keeps_flowing_for_several_intervals() -> None:
    """sse-starlette pings every interval even while data flows; here only silence does."""

    async def paced() -> AsyncIterator[str]:
        for i in range(15):
            yield f"e{i}"
            await asyncio.sleep(0.1)  # pacing: 1.5 s of data, each gap a fifth of the interval

    client = FakeClient()
    await serve(EventSourceResponse(paced(), ping=0.5), client)
    assert b": ping" not in client.body
    assert datas(client.body) == [f"e{i}" for i in range(15)]


async def test_heartbeat_after_the_idle_interval_between_events() -> None:
    client = FakeClient()

    async def gen() -> AsyncIterator[str]:
        yield "a"
        await client.wait_body(b": ping\n")  # silent until the heartbeat came
        yield "b"

    await serve(EventSourceResponse(gen(), ping=0.05), client)
    body = client.body
    assert body.startswith(b"data: a\n\n: ping\n")
    assert body.endswith(b"data: b\n\n")
    middle = body[len(b"data: a\n\n") : -len(b"data: b\n\n")]
    assert middle and middle.replace(b": ping\n", b"") == b""  # only heartbeats in the silence
    assert datas(body) == ["a", "b"]
    assert client.ended


async def test_heartbeat_before_the_first_event() -> None:
    client = FakeClient()

    async def gen() -> AsyncIterator[str]:
        await client.wait_body(b": ping\n")
        yield "late"

    await serve(EventSourceResponse(gen(), ping=0.05), client)
    assert client.body.startswith(b": ping\n")
    assert datas(client.body) == ["late"]


async def test_custom_ping_message_factory() -> None:
    client = FakeClient()
    made: list[int] = []

    def factory() -> ServerSentEvent:
        made.append(1)
        return ServerSentEvent(comment="keepalive", event="ka", data="")

    async def gen() -> AsyncIterator[str]:
        yield "a"
        await client.wait_body(b"event: ka\n")
        yield "b"

    await serve(EventSourceResponse(gen(), ping=0.05, ping_message_factory=factory), client)
    assert b": keepalive\nevent: ka\ndata: \n\n" in client.body
    assert b": ping" not in client.body
    assert made
    assert decode(client.body)[0].event == "message"
    assert "ka" in [e.event for e in decode(client.body)]


async def test_ping_zero_disables_the_heartbeat() -> None:
    async def gen() -> AsyncIterator[str]:
        yield "a"
        await asyncio.sleep(0.2)  # silence four times the interval that would otherwise ping
        yield "b"

    client = FakeClient()
    await serve(EventSourceResponse(gen(), ping=0), client)
    assert client.body == b"data: a\n\ndata: b\n\n"


# -- write coalescing --------------------------------------------------------------------------
async def test_a_fast_generator_is_coalesced_into_few_messages_in_order() -> None:
    n = 5000
    pad = "x" * 80

    async def fast() -> AsyncIterator[str]:
        for i in range(n):
            yield f"{i} {pad}"

    client = FakeClient()
    await serve(EventSourceResponse(fast(), ping=0), client)
    expected = b"".join(f"data: {i} {pad}\n\n".encode() for i in range(n))
    assert client.body == expected  # every byte, in order
    messages = [m for m in client.body_messages if m["body"]]
    assert len(messages) < n // 20, len(messages)
    item = len(f"data: {n} {pad}\n\n")
    assert max(len(m["body"]) for m in messages) <= 64 * 1024 + item
    assert client.ended


async def test_coalescing_also_for_a_sync_list() -> None:
    items = [f"{i}" for i in range(3000)]
    client = FakeClient()
    await serve(EventSourceResponse(items, ping=0), client)
    assert datas(client.body) == items
    assert len([m for m in client.body_messages if m["body"]]) <= 3


async def test_an_event_that_is_ready_is_never_held_back() -> None:
    """The generator waits until event i was *sent* before producing i+1: if the response held
    a ready event back to coalesce it with the next one, this would deadlock (and time out)."""
    n = 50
    client = FakeClient()

    async def gen() -> AsyncIterator[str]:
        for i in range(n):
            yield f"e{i}"
            await client.wait_body(f"data: e{i}\n\n".encode())

    await serve(EventSourceResponse(gen(), ping=0), client)
    bodies = [m["body"] for m in client.body_messages if m["body"]]
    assert bodies == [f"data: e{i}\n\n".encode() for i in range(n)]


# -- bounded buffer ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_a_stalled_send_stalls_the_generator_within_max_buffer(kind: str) -> None:
    item = b"data: " + b"x" * 92 + b"\n\n"  # 100 bytes
    max_buffer = 1000
    cleanup = Cleanup()

    async def agen() -> AsyncIterator[bytes]:
        try:
            while True:
                cleanup.produced += 1
                yield item
        finally:
            cleanup.done.set()

    def sgen() -> Iterator[bytes]:
        try:
            while True:
                cleanup.produced += 1
                yield item
        finally:
            cleanup.done.set()

    client = FakeClient()
    client.gate = asyncio.Event()  # the reader stops reading: body sends never complete
    response = EventSourceResponse(
        agen() if kind == "async" else sgen(), ping=0, max_buffer=max_buffer, send_timeout=None
    )
    async with streaming(response, client) as task:
        await client.wait_for(lambda: client.blocked_sends == 1)
        if kind == "async":
            # The generator never awaits: the producer only ever stops at the buffer bound, so
            # once this task runs again the producer is parked there.
            for _ in range(50):
                await asyncio.sleep(0)
        else:
            # Thread steps take real time: wait until the buffer is full, then watch a window
            # in which an unbounded producer would make hundreds more items.
            while cleanup.produced < max_buffer // len(item):
                await asyncio.sleep(0.001)
            await asyncio.sleep(0.2)
        produced = cleanup.produced
        for _ in range(50):
            await asyncio.sleep(0)
        assert cleanup.produced == produced  # stalled, not advancing
        assert produced * len(item) <= max_buffer + len(item)
        assert produced >= max_buffer // len(item)  # it did fill the buffer
        # The peer goes away while the send is still blocked: the generator is closed at once.
        client.disconnect()
        await asyncio.to_thread(cleanup.done.wait, TIMEOUT)
        assert cleanup.done.is_set()
        assert not task.done()  # (the send is still blocked: the generator did not wait for it)
        client.gate.set()
        await task
    assert not client.ended


async def test_bytes_in_flight_count_against_the_bound() -> None:
    """While one chunk is in a blocked send, the producer may only add what fits beside it."""
    max_buffer = 1000
    count = 0

    async def gen() -> AsyncIterator[bytes]:
        nonlocal count
        while True:
            count += 1
            yield b"x" * 99 + b"\n"

    client = FakeClient()
    client.gate = asyncio.Event()
    response = TextStreamResponse(gen(), max_buffer=max_buffer, send_timeout=None)
    async with streaming(response, client) as task:
        await client.wait_for(lambda: client.blocked_sends == 1)
        for _ in range(20):
            await asyncio.sleep(0)
        assert count * 100 <= max_buffer + 100
        seen = count
        client.gate.set()  # let exactly the sends through, then stall again
        client.gate = asyncio.Event()
        await client.wait_for(lambda: client.blocked_sends == 2)
        for _ in range(20):
            await asyncio.sleep(0)
        sent = len(client.body)
        assert (count * 100 - sent) <= max_buffer + 100  # unsent bytes stay bounded
        assert count > seen
        client.disconnect()
        client.gate.set()
        await task


# -- errors ------------------------------------------------------------------------------------
async def test_error_before_the_first_byte_is_raised_for_a_normal_http_error() -> None:
    async def broken() -> AsyncIterator[str]:
        raise RuntimeError("boom")
        yield "never"  # pragma: no cover

    supervisor = StreamSupervisor(hook_signals=False)
    client = FakeClient()
    with pytest.raises(RuntimeError, match="boom"):
        await serve(EventSourceResponse(broken(), supervisor=supervisor), client)
    assert client.messages == []
    assert supervisor.stats.errors == 1
    assert supervisor.stats.active == 0


async def test_error_before_the_first_byte_of_a_sync_generator() -> None:
    def broken() -> Iterator[str]:
        raise ValueError("bad input")
        yield "never"  # pragma: no cover

    client = FakeClient()
    with pytest.raises(ValueError, match="bad input"):
        await serve(EventSourceResponse(broken()), client)
    assert client.messages == []


async def test_an_unencodable_first_item_is_an_http_error() -> None:
    client = FakeClient()
    with pytest.raises(SSEEncodeError):
        await serve(EventSourceResponse([{"data": "x", "event": "a\nb"}]), client)
    assert client.messages == []


async def test_error_after_headers_becomes_an_error_event_and_a_clean_end() -> None:
    async def gen() -> AsyncIterator[str]:
        yield "before"
        raise StreamError("quota exhausted for this stream")

    supervisor = StreamSupervisor(hook_signals=False)
    client = FakeClient()
    await serve(EventSourceResponse(gen(), supervisor=supervisor), client)
    assert client.start["status"] == 200
    events = decode(client.body)
    assert [e.event for e in events] == ["message", "error"]
    assert events[0].data == "before"
    assert orjson.loads(events[1].data) == {
        "type": "StreamError",
        "message": "quota exhausted for this stream",
    }
    assert client.body.endswith(
        b'event: error\ndata: {"type":"StreamError",'
        b'"message":"quota exhausted for this stream"}\n\n'
    )
    assert b"Traceback" not in client.body
    assert client.ended
    assert supervisor.stats.errors == 1


async def test_foreign_exception_messages_are_masked() -> None:
    async def gen() -> AsyncIterator[str]:
        yield "before"
        raise RuntimeError("password=hunter2 at db.internal:5432")

    client = FakeClient()
    await serve(EventSourceResponse(gen()), client)
    error = decode(client.body)[-1]
    assert error.event == "error"
    body = orjson.loads(error.data)
    assert set(body) == {"type", "message"}
    assert body["type"] == "internal_error"
    assert b"hunter2" not in client.body
    assert b"RuntimeError" not in client.body
    assert b"Traceback" not in client.body
    assert client.ended


async def test_error_after_headers_with_no_event_yet() -> None:
    """Headers go out after ``open_timeout`` without an item; a failure after that is in-band."""
    client = FakeClient()

    async def gen() -> AsyncIterator[str]:
        await client.wait_for(
            lambda: any(m["type"] == "http.response.start" for m in client.messages)
        )
        raise StreamError("late failure")
        yield "never"  # pragma: no cover

    await serve(EventSourceResponse(gen(), open_timeout=0.01), client)
    events = decode(client.body)
    assert [(e.event, orjson.loads(e.data)["message"]) for e in events] == [
        ("error", "late failure")
    ]
    assert client.ended


# -- client disconnect -------------------------------------------------------------------------
def sync_endless(cleanup: Cleanup) -> Iterator[str]:
    """A sync generator that keeps producing (a step is short, as a thread cannot be stopped)."""
    try:
        cleanup.produced += 1
        yield "a"
        while True:
            time.sleep(0.005)
            yield "tick"
    finally:
        cleanup.done.set()


@pytest.mark.parametrize("cls", [EventSourceResponse, NDJSONResponse, TextStreamResponse])
@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_disconnect_cancels_the_generator_and_awaits_the_close_handler(
    cls: type[_StreamingBase], kind: str
) -> None:
    cleanup = Cleanup()
    closed: list[Message] = []

    async def on_close(message: Message) -> None:
        assert cleanup.done.is_set()  # the generator's finally ran first
        closed.append(message)

    supervisor = StreamSupervisor(hook_signals=False)
    ran: list[str] = []
    content = endless(cleanup) if kind == "async" else sync_endless(cleanup)
    response = cls(
        content,
        client_close_handler_callable=on_close,
        supervisor=supervisor,
        background=BackgroundTask(ran.append, "bg"),
    )
    client = FakeClient()
    async with streaming(response, client) as task:
        await client.wait_for(lambda: len(client.body) > 0)
        client.disconnect()
        await task
    assert cleanup.done.is_set()
    assert closed == [{"type": "http.disconnect"}]
    assert not client.ended
    assert ran == []  # no background task for a stream that did not finish
    assert supervisor.stats.disconnected == 1
    assert supervisor.stats.active == 0
    assert supervisor.stats.completed == 0


async def test_generator_cleanup_that_awaits_is_not_interrupted() -> None:
    """The iterator is cancelled once: its ``finally`` may await its own cleanup to the end,
    also when the sender, blocked in a send at the disconnect, tears down meanwhile."""
    go = asyncio.Event()
    started = asyncio.Event()
    release = asyncio.Event()
    finished: list[str] = []

    async def gen() -> AsyncIterator[str]:
        try:
            yield "a"
            await go.wait()
            yield "b"
            await asyncio.Event().wait()
        finally:
            started.set()
            await release.wait()
            await asyncio.sleep(0)
            finished.append("cleanup complete")

    client = FakeClient()
    async with streaming(EventSourceResponse(gen()), client) as task:
        await client.wait_body(b"data: a\n\n")
        gate = client.gate = asyncio.Event()
        go.set()
        await client.wait_for(lambda: client.blocked_sends == 1)  # the sender is stuck on "b"
        client.disconnect()
        await started.wait()  # the generator is in its cleanup
        gate.set()  # now the blocked send returns and the sender tears the stream down
        for _ in range(10):
            await asyncio.sleep(0)
        assert not task.done()  # teardown waits for the generator's cleanup
        release.set()
        await task
    assert finished == ["cleanup complete"]


async def test_a_send_raising_oserror_is_a_disconnect() -> None:
    cleanup = Cleanup()
    closed: list[Message] = []

    async def on_close(message: Message) -> None:
        closed.append(message)

    supervisor = StreamSupervisor(hook_signals=False)
    client = FakeClient()
    client.send_error = OSError("connection reset")
    response = EventSourceResponse(
        endless(cleanup), client_close_handler_callable=on_close, supervisor=supervisor
    )
    await serve(response, client)  # no exception escapes
    assert cleanup.done.is_set()
    assert closed == [{"type": "http.disconnect"}]
    assert supervisor.stats.disconnected == 1


async def test_disconnect_reported_after_a_complete_body_is_not_a_disconnect() -> None:
    """uvicorn answers ``receive`` with ``http.disconnect`` once the body is complete."""
    closed: list[Message] = []

    async def on_close(message: Message) -> None:
        closed.append(message)

    supervisor = StreamSupervisor(hook_signals=False)
    client = FakeClient(disconnect_when_complete=True)
    response = EventSourceResponse(
        ["a", "b"], client_close_handler_callable=on_close, supervisor=supervisor
    )
    await serve(response, client)
    assert client.ended
    assert closed == []
    assert supervisor.stats.completed == 1
    assert supervisor.stats.disconnected == 0


# -- slow client -------------------------------------------------------------------------------
async def test_send_timeout_closes_the_stream_runs_cleanup_and_is_counted() -> None:
    cleanup = Cleanup()
    closed: list[Message] = []

    async def on_close(message: Message) -> None:
        closed.append(message)

    async def gen() -> AsyncIterator[str]:
        try:
            while True:
                yield "x" * 100
                await asyncio.sleep(0)
        finally:
            cleanup.done.set()

    supervisor = StreamSupervisor(hook_signals=False)
    client = FakeClient()
    client.gate = asyncio.Event()  # never set: a frozen reader
    response = EventSourceResponse(
        gen(), send_timeout=0.05, supervisor=supervisor, client_close_handler_callable=on_close
    )
    await serve(response, client)  # returns by itself: the timeout ended it
    assert cleanup.done.is_set()
    assert supervisor.stats.send_timeouts == 1
    assert supervisor.stats.active == 0
    assert supervisor.stats.disconnected == 0
    assert client.body_messages == []  # the blocked send never completed
    assert closed == []  # not a client disconnect


async def test_a_blocked_heartbeat_also_times_out() -> None:
    cleanup = Cleanup()
    supervisor = StreamSupervisor(hook_signals=False)
    client = FakeClient()
    gate = asyncio.Event()

    def first_body(body: bytes) -> None:
        client.gate = gate  # after the first event, the reader freezes

    client.on_body = first_body
    response = EventSourceResponse(
        endless(cleanup), ping=0.02, send_timeout=0.05, supervisor=supervisor
    )
    await serve(response, client)
    assert client.body == b"data: a\n\n"
    assert client.blocked_sends >= 1
    assert cleanup.done.is_set()
    assert supervisor.stats.send_timeouts == 1


# -- graceful drain ----------------------------------------------------------------------------
async def test_drain_sends_reconnect_with_retry_and_runs_cleanup() -> None:
    cleanup = Cleanup()
    supervisor = StreamSupervisor(retry_ms=(100, 200), hook_signals=False)
    ran: list[str] = []
    client = FakeClient()
    response = EventSourceResponse(
        endless(cleanup), supervisor=supervisor, background=BackgroundTask(ran.append, "bg")
    )
    async with streaming(response, client) as task:
        await client.wait_body(b"data: a\n\n")
        assert supervisor.stats.active == 1
        supervisor.drain()
        assert supervisor.draining
        await task
    events = decode(client.body)
    assert [e.event for e in events] == ["message", "reconnect"]
    final = events[-1]
    assert final.data == ""
    assert final.retry is not None and 100 <= final.retry <= 200
    assert b"event: reconnect\ndata: \nretry: " in client.body
    assert client.ended
    assert cleanup.done.is_set()
    assert supervisor.stats.drained == 1
    assert supervisor.stats.active == 0
    assert ran == ["bg"]


async def test_drain_flushes_what_was_produced_during_the_grace_period() -> None:
    cleanup = Cleanup()
    go = asyncio.Event()
    supervisor = StreamSupervisor(grace_period=0.5, retry_ms=(5, 5), hook_signals=False)

    async def gen() -> AsyncIterator[str]:
        try:
            yield "a"
            await go.wait()
            yield "during grace"
            await asyncio.Event().wait()
        finally:
            cleanup.done.set()

    client = FakeClient()
    async with streaming(EventSourceResponse(gen(), supervisor=supervisor), client) as task:
        await client.wait_body(b"data: a\n\n")
        supervisor.drain()
        go.set()
        await client.wait_body(b"data: during grace\n\n")
        assert b"reconnect" not in client.body  # still inside the grace period
        await task
    assert [e.data for e in decode(client.body)] == ["a", "during grace", ""]
    assert client.body.endswith(b"event: reconnect\ndata: \nretry: 5\n\n")
    assert cleanup.done.is_set()


async def test_many_streams_drain_and_wait_idle_returns() -> None:
    supervisor = StreamSupervisor(retry_ms=(1, 1000), hook_signals=False)
    cleanups = [Cleanup() for _ in range(20)]
    clients = [FakeClient() for _ in cleanups]
    tasks = [
        asyncio.create_task(
            EventSourceResponse(endless(c), supervisor=supervisor)(
                http_scope(), client.receive, client.send
            )
        )
        for c, client in zip(cleanups, clients, strict=True)
    ]
    try:
        async with asyncio.timeout(TIMEOUT):
            for client in clients:
                await client.wait_body(b"data: a\n\n")
            assert supervisor.stats.active == 20
            supervisor.drain()
            await supervisor.wait_idle()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
    assert all(c.done.is_set() for c in cleanups)
    assert all(client.ended for client in clients)
    assert supervisor.stats.drained == 20
    assert supervisor.stats.active == 0
    retries = {decode(client.body)[-1].retry for client in clients}
    assert len(retries) > 1  # jittered, not one reconnect storm


async def test_a_stream_opened_while_draining_ends_at_once() -> None:
    supervisor = StreamSupervisor(retry_ms=(9, 9), hook_signals=False)
    supervisor.drain()
    cleanup = Cleanup()
    client = FakeClient()
    await serve(EventSourceResponse(endless(cleanup), supervisor=supervisor), client)
    assert client.body.endswith(b"event: reconnect\ndata: \nretry: 9\n\n")
    assert cleanup.done.is_set()


async def test_supervisor_is_found_in_lifespan_state() -> None:
    supervisor = StreamSupervisor(hook_signals=False)
    client = FakeClient()
    scope = http_scope(state={SUPERVISOR_STATE_KEY: supervisor})
    await serve(EventSourceResponse(["a"]), client, scope)
    assert supervisor.stats.opened == 1
    assert supervisor.stats.completed == 1


async def test_each_lifespan_starts_undrained() -> None:
    supervisor = StreamSupervisor(hook_signals=False)
    async with supervisor.lifespan(object()) as state:
        assert state == {SUPERVISOR_STATE_KEY: supervisor}
        assert not supervisor.draining
    assert supervisor.draining  # the end of the lifespan drains
    async with supervisor.lifespan(object()):
        assert not supervisor.draining  # a second serving period is not drained from the start
        client = FakeClient()
        cleanup = Cleanup()
        async with streaming(EventSourceResponse(endless(cleanup), supervisor=supervisor), client):
            await client.wait_body(b"data: a\n\n")
            client.disconnect()
    assert b"reconnect" not in client.body
    assert supervisor.stats.disconnected == 1


async def test_signal_hook_drains_then_calls_the_previous_handler() -> None:
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        supervisor = StreamSupervisor(retry_ms=(3, 3))
        cleanup = Cleanup()
        client = FakeClient()
        with supervisor.signal_hook():
            async with streaming(
                EventSourceResponse(endless(cleanup), supervisor=supervisor), client
            ) as task:
                await client.wait_body(b"data: a\n\n")
                signal.raise_signal(signal.SIGTERM)
                await task
        assert seen == [signal.SIGTERM]
        assert client.body.endswith(b"event: reconnect\ndata: \nretry: 3\n\n")
        assert signal.getsignal(signal.SIGTERM) is not None
        restored = signal.getsignal(signal.SIGTERM)
        assert callable(restored) and getattr(restored, "__name__", "") == "<lambda>"
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- shutdown_event (sse-starlette's option) ---------------------------------------------------
async def test_setting_the_shutdown_event_drains_after_the_grace_period() -> None:
    cleanup = Cleanup()
    shutdown = asyncio.Event()
    client = FakeClient()
    response = EventSourceResponse(
        endless(cleanup), shutdown_event=shutdown, shutdown_grace_period=0.05
    )
    async with streaming(response, client) as task:
        await client.wait_body(b"data: a\n\n")
        shutdown.set()
        await task
    assert client.body.endswith(b"event: reconnect\ndata: \nretry: 2000\n\n")
    assert client.ended
    assert cleanup.done.is_set()


@pytest.mark.parametrize("event_type", ["asyncio", "anyio"])
async def test_drain_sets_the_shutdown_event_for_a_cooperative_farewell(event_type: str) -> None:
    """As in sse-starlette: the library sets ``shutdown_event`` at shutdown, the generator says
    goodbye and ends by itself within ``shutdown_grace_period`` (no force-cancel needed)."""
    shutdown: asyncio.Event | anyio.Event = (
        asyncio.Event() if event_type == "asyncio" else anyio.Event()
    )
    cleanup = Cleanup()

    async def gen() -> AsyncIterator[str]:
        try:
            yield "working"
            await shutdown.wait()
            for _ in range(10):  # the farewell takes a few turns of the loop
                await asyncio.sleep(0)
            yield "goodbye"
        finally:
            cleanup.done.set()

    supervisor = StreamSupervisor(hook_signals=False)  # its own grace is 0: the response's wins
    client = FakeClient()
    response = EventSourceResponse(
        gen(), shutdown_event=shutdown, shutdown_grace_period=60, supervisor=supervisor
    )
    async with streaming(response, client) as task:
        await client.wait_body(b"data: working\n\n")
        supervisor.drain()
        await task  # long before the 60 s grace: the generator ended itself
    assert datas(client.body) == ["working", "goodbye"]
    assert client.ended
    assert cleanup.done.is_set()
    assert supervisor.stats.completed == 1


# -- data_sender_callable ----------------------------------------------------------------------
async def test_data_sender_callable_runs_and_is_cancelled_at_the_end() -> None:
    queue: asyncio.Queue[str] = asyncio.Queue()
    sender_state: list[str] = []

    async def data_sender() -> None:
        try:
            sender_state.append("started")
            for i in range(3):
                await queue.put(f"pushed {i}")
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            sender_state.append("cancelled")
            raise

    async def from_queue() -> AsyncIterator[str]:
        for _ in range(3):
            yield await queue.get()

    client = FakeClient()
    await serve(EventSourceResponse(from_queue(), data_sender_callable=data_sender), client)
    assert datas(client.body) == ["pushed 0", "pushed 1", "pushed 2"]
    assert sender_state == ["started", "cancelled"]
    assert client.ended


async def test_a_failing_data_sender_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def data_sender() -> None:
        raise LookupError("sender broke")

    client = FakeClient()

    async def gen() -> AsyncIterator[str]:
        yield "a"

    with caplog.at_level("ERROR", logger="mianzhang.responses"):
        await serve(EventSourceResponse(gen(), data_sender_callable=data_sender), client)
    assert any(r.exc_info and isinstance(r.exc_info[1], LookupError) for r in caplog.records), (
        caplog.records
    )


# -- background --------------------------------------------------------------------------------
async def test_background_task_runs_after_the_body_is_complete() -> None:
    order: list[str] = []
    client = FakeClient()
    client.on_body = lambda body: order.append("body")

    async def bg() -> None:
        assert client.ended
        order.append("background")

    supervisor = StreamSupervisor(hook_signals=False)
    await serve(
        EventSourceResponse(["a"], background=BackgroundTask(bg), supervisor=supervisor), client
    )
    assert order[-1] == "background"
    assert order.count("background") == 1
    assert supervisor.stats.completed == 1


async def test_background_task_does_not_run_after_a_send_timeout() -> None:
    ran: list[str] = []
    client = FakeClient()
    client.gate = asyncio.Event()
    response = EventSourceResponse(
        ["a"], send_timeout=0.02, background=BackgroundTask(ran.append, "bg")
    )
    await serve(response, client)
    assert ran == []


# -- NDJSON and text ---------------------------------------------------------------------------
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


# -- sse-starlette 3.x compatibility -----------------------------------------------------------
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


# -- statistics --------------------------------------------------------------------------------
async def test_statistics_count_each_outcome_once() -> None:
    supervisor = StreamSupervisor(hook_signals=False)
    await serve(EventSourceResponse(["a"], supervisor=supervisor), FakeClient())

    async def failing() -> AsyncIterator[str]:
        yield "a"
        raise StreamError("x")

    await serve(EventSourceResponse(failing(), supervisor=supervisor), FakeClient())
    stats = supervisor.stats
    assert (stats.opened, stats.active, stats.completed, stats.errors) == (2, 0, 1, 1)
    assert (stats.disconnected, stats.send_timeouts, stats.drained) == (0, 0, 0)


async def test_cancelling_the_request_task_still_unregisters_and_cleans_up() -> None:
    """uvicorn cancels request tasks when the graceful timeout runs out."""
    cleanup = Cleanup()
    supervisor = StreamSupervisor(hook_signals=False)
    client = FakeClient()
    async with streaming(
        EventSourceResponse(endless(cleanup), supervisor=supervisor), client
    ) as task:
        await client.wait_body(b"data: a\n\n")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert cleanup.done.is_set()
    assert supervisor.stats.active == 0
    assert supervisor.stats.errors == 1


# -- fair turns between busy streams -----------------------------------------------------------
async def test_a_new_stream_does_not_wait_for_a_full_batch_of_every_busy_stream() -> None:
    """Busy streams produce one ``max_buffer`` batch per loop iteration between them (not one
    each), so a stream that starts among them sends its first event after a few batches.

    Each bulk generator never awaits and its sends never block: only the engine's turns
    decide when a bulk producer stops. If every bulk stream produced a full batch in every
    iteration, the new stream's first event would come after at least one batch per bulk
    stream (``bulk_streams * batch`` items); with turns it comes after a few batches.
    """
    bulk_streams = 20
    max_buffer = 64 * 1024
    item = b"data: " + b"x" * 92 + b"\n\n"  # 100 bytes, already encoded
    batch = max_buffer // len(item)  # items in one batch
    produced = 0  # items made by all the bulk generators
    cleanups = [Cleanup() for _ in range(bulk_streams)]
    clients = [FakeClient() for _ in cleanups]

    async def bulk(cleanup: Cleanup) -> AsyncIterator[bytes]:
        nonlocal produced
        try:
            while True:
                cleanup.produced += 1
                produced += 1
                yield item
        finally:
            cleanup.done.set()

    def response(content: AsyncIterator[Any]) -> EventSourceResponse:
        return EventSourceResponse(content, ping=0, max_buffer=max_buffer, send_timeout=None)

    tasks = [
        asyncio.create_task(response(bulk(c))(http_scope(), client.receive, client.send))
        for c, client in zip(cleanups, clients, strict=True)
    ]
    fresh_cleanup = Cleanup()
    fresh = FakeClient()
    produced_at_first_body: list[int] = []

    def on_body(body: bytes) -> None:
        if not produced_at_first_body:
            produced_at_first_body.append(produced)

    fresh.on_body = on_body
    try:
        async with asyncio.timeout(TIMEOUT):
            for cleanup, client in zip(cleanups, clients, strict=True):  # all of them busy
                await client.wait_for(lambda c=cleanup: c.produced >= 3 * batch)
            produced_at_start = produced
            tasks.append(
                asyncio.create_task(
                    response(endless(fresh_cleanup))(http_scope(), fresh.receive, fresh.send)
                )
            )
            await fresh.wait_body(b"data: a\n\n")
            assert fresh.body_messages[0]["body"] == b"data: a\n\n"
            during = produced_at_first_body[0] - produced_at_start
            # measured: about 3 batches with turns, about 2 per bulk stream without them
            assert during < bulk_streams * batch, (during, batch)
            assert produced > produced_at_start  # the bulk streams were still busy meanwhile
            for client in [*clients, fresh]:
                client.disconnect()
            await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
    assert all(c.done.is_set() for c in cleanups)
    assert fresh_cleanup.done.is_set()
    assert not any(client.ended for client in [*clients, fresh])  # ended by the disconnects


async def test_a_failing_receive_is_logged_once_and_the_stream_still_completes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The disconnect watcher is a task on the server's ``receive()``: if that raises, the
    stream goes on (only disconnect detection is lost) and the failure is logged once."""
    client = FakeClient()

    async def broken_receive() -> Message:
        raise RuntimeError("receive broke")

    async def events() -> AsyncIterator[str]:
        for i in range(3):
            yield str(i)

    with caplog.at_level(logging.ERROR, logger="mianzhang.responses"):
        async with asyncio.timeout(5):
            await EventSourceResponse(events())(http_scope(), broken_receive, client.send)
    assert datas(b"".join(m.get("body", b"") for m in client.messages[1:])) == ["0", "1", "2"]
    failures = [r for r in caplog.records if r.getMessage() == "stream helper failed"]
    assert len(failures) == 1
    assert isinstance(failures[0].exc_info and failures[0].exc_info[1], RuntimeError)


def test_default_headers_are_shared_encoded_but_each_response_owns_its_list() -> None:
    """The class's default headers are encoded once; editing one response's headers (Starlette's
    ``MutableHeaders`` works on ``raw_headers`` in place) never changes another's."""
    first, second = EventSourceResponse(iter(())), EventSourceResponse(iter(()))
    assert first.raw_headers == second.raw_headers
    assert first.raw_headers is not second.raw_headers
    first.headers["x-trace"] = "1"
    first.headers["cache-control"] = "no-store"
    assert (b"x-trace", b"1") not in second.raw_headers
    assert dict(second.raw_headers)[b"cache-control"] == b"no-cache"
    assert dict(EventSourceResponse(iter(())).raw_headers)[b"cache-control"] == b"no-cache"


def test_a_subclass_with_its_own_init_headers_gets_it_called() -> None:
    class Tagged(EventSourceResponse):
        def init_headers(self, headers: Any = None) -> None:
            super().init_headers(headers)
            self.raw_headers.append((b"x-tagged", b"yes"))

    assert (b"x-tagged", b"yes") in Tagged(iter(())).raw_headers
    assert (b"x-tagged", b"yes") not in EventSourceResponse(iter(())).raw_headers


def test_another_media_type_is_encoded_for_that_response_only() -> None:
    other = EventSourceResponse(iter(()), media_type="text/event-stream; x=1")
    assert dict(other.raw_headers)[b"content-type"].startswith(b"text/event-stream; x=1")
    default = dict(EventSourceResponse(iter(())).raw_headers)[b"content-type"]
    assert default == b"text/event-stream; charset=utf-8"
