"""A server that reports a lost connection itself (its transport's ``on_lost``): the stream
waits on no ``receive()`` and ends as a disconnect when told, with the same cleanup; the
callback is withdrawn when the stream ends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import Message

from mianzhang import EventSourceResponse, StreamSupervisor
from tests.responses._peer import Cleanup, FakeClient, endless, serve, streaming
from tests.responses.test_cut import FakeTransport, offering


class ReportingTransport(FakeTransport):
    def __init__(self) -> None:
        super().__init__()
        self.lost: Callable[[], None] | None = None
        self.registrations: list[bool] = []

    def on_lost(self, callback: Callable[[], None] | None) -> bool:
        self.registrations.append(callback is not None)
        self.lost = callback
        return True


class CountingClient(FakeClient):
    def __init__(self) -> None:
        super().__init__()
        self.receives = 0

    async def receive(self) -> Message:
        self.receives += 1
        return await super().receive()


async def test_a_reported_loss_ends_the_stream_as_a_disconnect() -> None:
    transport = ReportingTransport()
    supervisor = StreamSupervisor(hook_signals=False)
    client = CountingClient()
    cleanup = Cleanup()
    closed: list[Message] = []

    async def on_close(message: Message) -> None:
        closed.append(message)

    response = EventSourceResponse(
        endless(cleanup), supervisor=supervisor, client_close_handler_callable=on_close
    )
    async with streaming(response, client, offering(transport)) as task:
        await client.wait_body(b"data: a")
        assert client.receives == 0  # no task waits on receive()
        assert transport.lost is not None
        transport.lost()
        await task
    assert cleanup.done.is_set()
    assert closed == [{"type": "http.disconnect"}]
    assert supervisor.stats.disconnected == 1
    assert transport.registrations == [True, False]  # withdrawn at the end


async def test_a_stream_that_ended_is_not_told_of_a_later_loss() -> None:
    transport = ReportingTransport()
    supervisor = StreamSupervisor(hook_signals=False)
    client = CountingClient()
    await serve(EventSourceResponse(["a"], supervisor=supervisor), client, offering(transport))
    assert client.ended
    assert transport.lost is None
    assert supervisor.stats.completed == 1


async def test_without_the_report_the_stream_watches_receive() -> None:
    client = CountingClient()
    async with streaming(EventSourceResponse(endless(Cleanup())), client) as task:
        await client.wait_body(b"data: a")
        assert client.receives == 1
        client.disconnect()
        await asyncio.wait_for(task, 5)
