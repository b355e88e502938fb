"""Graceful shutdown: a drain (supervisor, signal hook, lifespan or ``shutdown_event``) flushes
what each stream holds, sends a jittered ``reconnect`` and ends it; cleanup always runs, also
when the request task is cancelled."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import anyio
import anyio.to_thread
import pytest
from starlette.background import BackgroundTask

from mianzhang import EventSourceResponse, StreamSupervisor
from mianzhang._responses import SUPERVISOR_STATE_KEY
from tests._support.asgi import http_scope
from tests.responses._peer import (
    TIMEOUT,
    Cleanup,
    FakeClient,
    datas,
    decode,
    endless,
    serve,
    streaming,
)


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
