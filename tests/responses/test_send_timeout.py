"""Slow client: a send blocked longer than ``send_timeout`` ends the stream like a disconnect
(cleanup runs, no background task) and is counted as a send timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.background import BackgroundTask
from starlette.types import Message

from mianzhang import EventSourceResponse, StreamSupervisor
from tests.responses._peer import Cleanup, FakeClient, endless, serve


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


async def test_background_task_does_not_run_after_a_send_timeout() -> None:
    ran: list[str] = []
    client = FakeClient()
    client.gate = asyncio.Event()
    response = EventSourceResponse(
        ["a"], send_timeout=0.02, background=BackgroundTask(ran.append, "bg")
    )
    await serve(response, client)
    assert ran == []
