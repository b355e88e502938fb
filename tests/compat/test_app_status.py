"""``AppStatus`` (mianzhang.compat.sse_starlette) drives mianzhang's ``StreamSupervisor``: no
uvicorn patching, no polling. Setting ``should_exit`` drains every compat stream (and those
opened while it stays set), resetting it serves again; SIGTERM/SIGINT set it through a chained
handler unless the automatic drain is disabled."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from types import FrameType
from typing import Any

import pytest

from mianzhang import StreamSupervisor
from mianzhang._responses import SUPERVISOR_STATE_KEY
from mianzhang.compat.sse_starlette import EventSourceResponse
from mianzhang.compat.sse_starlette.sse import AppStatus
from tests._support.asgi import http_scope
from tests.responses._peer import Cleanup, FakeClient, endless, streaming


@pytest.fixture(autouse=True)
def clean_app_status() -> Iterator[None]:
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    AppStatus.should_exit = False
    AppStatus.enable_automatic_graceful_drain_mode()
    AppStatus.original_handler = None
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


async def test_should_exit_drains_a_live_stream_with_a_retry_hint() -> None:
    cleanup = Cleanup()
    client = FakeClient()
    async with streaming(EventSourceResponse(endless(cleanup)), client) as task:
        await client.wait_body(b"data: a\r\n\r\n")
        AppStatus.should_exit = True
        await task
    assert client.ended
    assert client.body.startswith(b"data: a\r\n\r\nretry: ")
    assert cleanup.done.is_set()


async def test_streams_opened_while_exiting_end_at_once_and_reset_serves_again() -> None:
    AppStatus.should_exit = True
    first = FakeClient()
    async with streaming(EventSourceResponse(endless(Cleanup())), first) as task:
        await task
    assert first.ended and b"retry: " in first.body
    AppStatus.should_exit = False
    second = FakeClient()
    async with streaming(EventSourceResponse(endless(Cleanup())), second):
        await second.wait_body(b"data: a\r\n\r\n")
        supervisor = AppStatus.supervisor_for(None)  # this loop's, which the stream uses
        assert not supervisor.draining and supervisor.stats.active == 1
        second.disconnect()
    assert second.body == b"data: a\r\n\r\n"


async def test_should_exit_also_drains_the_supervisor_the_app_published() -> None:
    supervisor = StreamSupervisor(hook_signals=False)
    client = FakeClient()
    scope = http_scope(state={SUPERVISOR_STATE_KEY: supervisor})
    async with streaming(EventSourceResponse(endless(Cleanup())), client, scope) as task:
        await client.wait_body(b"data: a\r\n\r\n")
        AppStatus.should_exit = True
        await task
    assert supervisor.stats.drained == 1


async def test_shutdown_event_is_set_and_the_grace_is_given() -> None:
    shutdown = asyncio.Event()

    async def gen() -> AsyncIterator[str]:
        yield "hello"
        await shutdown.wait()
        yield "bye"

    client = FakeClient()
    response = EventSourceResponse(gen(), shutdown_event=shutdown, shutdown_grace_period=5)
    async with streaming(response, client) as task:
        await client.wait_body(b"data: hello\r\n\r\n")
        AppStatus.should_exit = True
        await task
    assert client.body == b"data: hello\r\n\r\ndata: bye\r\n\r\n"  # ended by itself


def test_handle_exit_sets_should_exit_and_calls_the_original_handler() -> None:
    calls: list[tuple[Any, ...]] = []
    AppStatus.original_handler = lambda *args: calls.append(args)
    AppStatus.handle_exit(signal.SIGTERM, None)
    assert AppStatus.should_exit is True
    assert calls == [(signal.SIGTERM, None)]


def test_a_disabled_automatic_drain_leaves_should_exit_alone() -> None:
    AppStatus.disable_automatic_graceful_drain()
    AppStatus.handle_exit(signal.SIGTERM, None)
    assert AppStatus.should_exit is False
    AppStatus.enable_automatic_graceful_drain_mode()
    AppStatus.handle_exit(signal.SIGTERM, None)
    assert AppStatus.should_exit is True


async def test_a_signal_sets_should_exit_then_calls_the_handler_it_chained() -> None:
    seen: list[int] = []

    def previous(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)

    signal.signal(signal.SIGTERM, previous)
    client = FakeClient()
    async with streaming(EventSourceResponse(endless(Cleanup())), client) as task:
        await client.wait_body(b"data: a\r\n\r\n")  # the first stream installed the chain
        chained = signal.getsignal(signal.SIGTERM)
        assert callable(chained) and chained is not previous
        chained(signal.SIGTERM, None)
        await task
    assert seen == [signal.SIGTERM]
    assert AppStatus.should_exit is True and client.ended


async def test_with_the_automatic_drain_disabled_a_signal_only_reaches_the_handler() -> None:
    seen: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    AppStatus.disable_automatic_graceful_drain()
    client = FakeClient()
    async with streaming(EventSourceResponse(endless(Cleanup())), client):
        await client.wait_body(b"data: a\r\n\r\n")
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)
        handler(signal.SIGTERM, None)
        assert AppStatus.should_exit is False
        client.disconnect()
    assert seen == [signal.SIGTERM]


async def test_a_handler_that_chains_back_is_called_once_and_no_handler_loops() -> None:
    """uvicorn's handler, then the chain, then a later hook that calls the chain in turn (a
    new lifespan's StreamSupervisor), then the chain again in front: one signal runs each
    handler once."""
    calls: list[str] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: calls.append("uvicorn"))

    async def one_stream() -> None:
        client = FakeClient()
        async with streaming(EventSourceResponse(endless(Cleanup())), client):
            await client.wait_body(b"data: a\r\n\r\n")
            client.disconnect()

    await one_stream()  # the chain goes in front of "uvicorn"
    chain = signal.getsignal(signal.SIGTERM)
    assert callable(chain)

    def later_hook(signum: int, frame: FrameType | None) -> None:
        calls.append("later hook")
        chain(signum, frame)  # calls what it replaced: the chain

    signal.signal(signal.SIGTERM, later_hook)
    await one_stream()  # the chain goes in front again
    handler = signal.getsignal(signal.SIGTERM)
    assert callable(handler) and handler is not later_hook
    handler(signal.SIGTERM, None)
    assert calls == ["later hook", "uvicorn"]
    assert AppStatus.should_exit is True


async def test_reset_serves_again_through_the_published_supervisor_too() -> None:
    supervisor = StreamSupervisor(hook_signals=False)
    scope = http_scope(state={SUPERVISOR_STATE_KEY: supervisor})
    first = FakeClient()
    async with streaming(EventSourceResponse(endless(Cleanup())), first, scope) as task:
        await first.wait_body(b"data: a\r\n\r\n")
        AppStatus.should_exit = True
        await task
    AppStatus.should_exit = False
    assert not supervisor.draining
