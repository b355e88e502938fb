"""Client disconnect: the iterator is cancelled and closed at once (its ``finally`` runs, also
for sync generators and while a send is blocked), the close handler is awaited, and the
disconnect is counted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from starlette.background import BackgroundTask
from starlette.types import Message

from mianzhang import EventSourceResponse, NDJSONResponse, StreamSupervisor, TextStreamResponse
from mianzhang._responses import _StreamingBase
from tests.responses._peer import Cleanup, FakeClient, endless, serve, streaming


def sync_endless(cleanup: Cleanup) -> Iterator[str]:
    """A sync generator that keeps producing (a step is short, as a thread cannot be stopped)."""
    try:
        cleanup.produced += 1
        yield "a"
        while True:
            time.sleep(0.005)  # pacing, the stimulus: a producer that keeps producing
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
