"""Live sources (``_content.LiveSource``): bytes pushed to a stream with ``deliver`` from a loop
callback (as ``mianzhang.log``'s fan-out does) are sent within the call when the stream is idle,
as a step of the stream's own task; otherwise they queue behind what is buffered, in order,
within ``max_buffer``; a pushed send that suspends or fails is finished or raised by the
stream's task."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from mianzhang import EventSourceResponse, StreamSupervisor
from mianzhang._responses._content import Deliver, LiveSource
from tests._support.wait import eventually
from tests.responses._peer import FakeClient, streaming

request_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_var", default="-")


class Source:
    """A live source: yields what the test puts in ``items``; keeps the ``deliver`` the
    engine gave it."""

    def __init__(self) -> None:
        self.deliver: Deliver | None = None
        self.items: asyncio.Queue[Any] = asyncio.Queue()

    def push_iter(self, deliver: Deliver) -> AsyncIterator[Any]:
        self.deliver = deliver
        return self._run()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._run()

    async def _run(self) -> AsyncIterator[Any]:
        while True:
            yield await self.items.get()


async def from_callback(call: Callable[[], Any]) -> Any:
    """Run ``call`` in a loop callback (where the fan-out runs), return what it returned."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()
    loop.call_soon(lambda: done.set_result(call()))
    return await done


def body_messages(client: FakeClient) -> list[bytes]:
    return [m["body"] for m in client.body_messages]


def test_the_source_is_a_live_source() -> None:
    assert isinstance(Source(), LiveSource)


async def test_a_push_to_an_idle_stream_is_sent_within_the_call_as_the_same_bytes() -> None:
    source, client = Source(), FakeClient()
    async with streaming(EventSourceResponse(source, open_timeout=0), client):
        await client.wait_for(lambda: bool(client.messages))  # the head, with no event
        assert source.deliver is not None
        deliver = source.deliver
        chunk = b"data: one\n\n"

        def push() -> tuple[bool, bool]:
            return deliver(chunk, 1), any(m["body"] is chunk for m in client.body_messages)

        assert await from_callback(push) == (True, True)  # sent before deliver returned
        assert body_messages(client) == [chunk]


async def test_pushed_bytes_queue_behind_buffered_ones_within_max_buffer() -> None:
    source, client = Source(), FakeClient()
    client.gate = asyncio.Event()  # the reader stops reading: body sends block
    response = EventSourceResponse(source, open_timeout=0, max_buffer=1000, send_timeout=None)
    async with streaming(response, client) as task:
        await client.wait_for(lambda: bool(client.messages))
        deliver = source.deliver
        assert deliver is not None
        source.items.put_nowait(b"data: a\n\n")
        await client.wait_for(lambda: client.blocked_sends == 1)  # "a" is in a blocked send
        source.items.put_nowait(b"data: b\n\n")
        await eventually(lambda: source.items.empty())
        assert await from_callback(lambda: deliver(b"data: c\n\n", 1)) is True  # buffered
        big = b"data: " + b"x" * 2000 + b"\n\n"
        assert await from_callback(lambda: deliver(big, 1)) is False  # over max_buffer
        client.gate.set()
        await client.wait_body(b"data: c\n\n")
        assert client.body == b"data: a\n\ndata: b\n\ndata: c\n\n"
        assert not task.done()


async def test_a_pushed_send_that_suspends_is_finished_by_the_stream_task() -> None:
    source, client = Source(), FakeClient()
    supervisor = StreamSupervisor(hook_signals=False)
    response = EventSourceResponse(source, open_timeout=0, supervisor=supervisor)
    async with streaming(response, client):
        await client.wait_for(lambda: bool(client.messages))
        deliver = source.deliver
        assert deliver is not None
        client.gate = asyncio.Event()
        assert await from_callback(lambda: deliver(b"data: one\n\n", 1)) is True
        assert client.blocked_sends == 1  # suspended inside the push
        assert await from_callback(lambda: deliver(b"data: two\n\n", 1)) is True  # queued
        client.gate.set()
        await client.wait_body(b"data: two\n\n")
        assert body_messages(client) == [b"data: one\n\n", b"data: two\n\n"]
        # idle again: the next push is sent within the call
        assert await from_callback(lambda: deliver(b"data: 3\n\n", 1)) is True
        assert body_messages(client)[-1] == b"data: 3\n\n"
    assert supervisor.stats.items_sent == 3


async def test_a_pushed_send_blocked_past_send_timeout_ends_the_stream() -> None:
    source, client = Source(), FakeClient()
    supervisor = StreamSupervisor(hook_signals=False)
    response = EventSourceResponse(source, open_timeout=0, send_timeout=0.05, supervisor=supervisor)
    async with streaming(response, client) as task:
        await client.wait_for(lambda: bool(client.messages))
        deliver = source.deliver
        assert deliver is not None
        client.gate = asyncio.Event()  # never opened
        assert await from_callback(lambda: deliver(b"data: one\n\n", 1)) is True
        await task
    assert supervisor.stats.send_timeouts == 1


async def test_a_pushed_send_runs_as_a_step_of_the_stream_task() -> None:
    source, client = Source(), FakeClient()
    seen: list[tuple[asyncio.Task[Any] | None, str]] = []
    original = client.send

    async def send(message: Any) -> None:
        if message["type"] == "http.response.body":
            seen.append((asyncio.current_task(), request_var.get()))
        await original(message)

    async def request() -> None:
        request_var.set("request-1")
        scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
        await EventSourceResponse(source, open_timeout=0)(scope, client.receive, send)

    task = asyncio.create_task(request())
    try:
        await client.wait_for(lambda: bool(client.messages))
        deliver = source.deliver
        assert deliver is not None
        assert await from_callback(lambda: deliver(b"data: one\n\n", 1)) is True
        assert seen == [(task, "request-1")]
    finally:
        task.cancel()
        await asyncio.wait((task,))


@pytest.mark.parametrize("failure", [RuntimeError("send broke"), OSError("peer gone")])
async def test_a_pushed_send_that_raises_ends_the_stream_as_the_task_would(
    failure: BaseException,
) -> None:
    source, client = Source(), FakeClient()
    supervisor = StreamSupervisor(hook_signals=False)
    response = EventSourceResponse(source, open_timeout=0, supervisor=supervisor)
    async with streaming(response, client) as task:
        await client.wait_for(lambda: bool(client.messages))
        deliver = source.deliver
        assert deliver is not None
        client.send_error = failure
        assert await from_callback(lambda: deliver(b"data: one\n\n", 1)) is True
        await asyncio.wait((task,))
    if isinstance(failure, OSError):
        assert task.exception() is None
        assert supervisor.stats.disconnected == 1
    else:
        assert task.exception() is failure  # as a failing send in the task raises
        assert supervisor.stats.errors == 1


async def test_a_stream_that_ended_refuses_pushes() -> None:
    source, client = Source(), FakeClient()
    async with streaming(EventSourceResponse(source, open_timeout=0), client) as task:
        await client.wait_for(lambda: bool(client.messages))
        client.disconnect()
        await task
    deliver = source.deliver
    assert deliver is not None
    assert await from_callback(lambda: deliver(b"data: late\n\n", 1)) is False
    assert b"late" not in client.body


async def test_items_and_pushes_leave_in_the_order_they_were_made() -> None:
    source, client = Source(), FakeClient()
    response = EventSourceResponse(source, open_timeout=0)
    async with streaming(response, client):
        await client.wait_for(lambda: bool(client.messages))
        deliver = source.deliver
        assert deliver is not None
        for n in range(3):
            source.items.put_nowait(f"data: item{n}\n\n".encode())
            await client.wait_body(f"item{n}".encode())
            assert await from_callback(lambda n=n: deliver(f"data: push{n}\n\n".encode(), 1))
        await client.wait_body(b"push2")
    assert client.body == b"".join(f"data: item{n}\n\ndata: push{n}\n\n".encode() for n in range(3))


async def test_plain_iteration_of_a_live_source_outside_the_engine() -> None:
    source = Source()
    source.items.put_nowait(b"data: x\n\n")
    client = FakeClient()
    async with streaming(EventSourceResponse(source.__aiter__()), client):
        await client.wait_body(b"data: x\n\n")
    assert source.deliver is None  # an iterator, not the source: no push offered
