"""What runs around a stream and what is counted: ``data_sender_callable`` (started with the
stream, cancelled at its end), the background task (after a complete body only), statistics
(each outcome once)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.background import BackgroundTask

from mianzhang import EventSourceResponse, StreamError, StreamSupervisor
from tests.responses._peer import FakeClient, datas, serve


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
