"""The options that bring sse-starlette 3.7's behaviour when asked: ``cleanup_timeout`` bounds
the iterator's cleanup, ``raise_errors`` lets failures and send timeouts propagate, the
``ping_interval`` property is checked, a WebSocket scope is denied with the response."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.background import BackgroundTask
from starlette.types import Message

from mianzhang import EventSourceResponse, NDJSONResponse, SendTimeout, StreamSupervisor
from tests._support.asgi import websocket_scope
from tests.responses._peer import Cleanup, FakeClient, endless, serve, streaming


# -- cleanup_timeout ------------------------------------------------------------------------------
def hanging_cleanup(events: list[str]) -> AsyncIterator[str]:
    async def gen() -> AsyncIterator[str]:
        try:
            yield "a"
            await asyncio.Event().wait()
        finally:
            events.append("cleanup started")
            try:
                await asyncio.Event().wait()  # a cleanup that never ends by itself
            except asyncio.CancelledError:
                events.append("cleanup cancelled")
                raise

    return gen()


async def test_cleanup_timeout_cancels_a_cleanup_that_outlasts_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[str] = []
    supervisor = StreamSupervisor(hook_signals=False)
    client = FakeClient()
    response = EventSourceResponse(
        hanging_cleanup(events), cleanup_timeout=0.05, supervisor=supervisor
    )
    with caplog.at_level(logging.WARNING, "mianzhang.responses"):
        async with streaming(response, client) as task:
            await client.wait_body(b"data: a\n\n")
            client.disconnect()
            await task  # returns: the cleanup was cut at cleanup_timeout
    assert events == ["cleanup started", "cleanup cancelled"]
    assert supervisor.stats.disconnected == 1 and supervisor.stats.active == 0
    assert "cleanup_timeout" in caplog.text


async def test_without_cleanup_timeout_the_cleanup_is_awaited_to_its_end() -> None:
    events: list[str] = []
    release = asyncio.Event()

    async def gen() -> AsyncIterator[str]:
        try:
            yield "a"
            await asyncio.Event().wait()
        finally:
            await release.wait()
            events.append("cleanup complete")

    client = FakeClient()
    async with streaming(EventSourceResponse(gen()), client) as task:
        await client.wait_body(b"data: a\n\n")
        client.disconnect()
        for _ in range(20):
            await asyncio.sleep(0)
        assert not task.done()  # waiting for the cleanup, however long
        release.set()
        await task
    assert events == ["cleanup complete"]


async def test_a_cleanup_within_cleanup_timeout_is_not_cut() -> None:
    cleanup = Cleanup()
    client = FakeClient()
    response = EventSourceResponse(endless(cleanup), cleanup_timeout=5)
    async with streaming(response, client) as task:
        await client.wait_body(b"data: a\n\n")
        client.disconnect()
        await task
    assert cleanup.done.is_set()


# -- raise_errors ---------------------------------------------------------------------------------
async def fail_after_first() -> AsyncIterator[str]:
    yield "first"
    raise RuntimeError("boom")


async def test_raise_errors_aborts_the_body_and_propagates_the_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []
    supervisor = StreamSupervisor(hook_signals=False)
    client = FakeClient()

    async def background() -> None:
        ran.append("background")

    response = EventSourceResponse(
        fail_after_first(),
        raise_errors=True,
        supervisor=supervisor,
        background=BackgroundTask(background),
    )
    with caplog.at_level(logging.ERROR, "mianzhang.responses"), pytest.raises(RuntimeError):
        await serve(response, client)
    assert client.body == b"data: first\n\n"
    assert not client.ended  # aborted: no in-band error, no end of body
    assert ran == []
    assert supervisor.stats.errors == 1 and supervisor.stats.active == 0
    assert "stream failed after headers" not in caplog.text  # the server logs what we raise


async def test_raise_errors_raises_send_timeout() -> None:
    cleanup = Cleanup()
    client = FakeClient()
    client.gate = asyncio.Event()  # a frozen reader
    response = EventSourceResponse(endless(cleanup), send_timeout=0.05, raise_errors=True)
    with pytest.raises(SendTimeout) as raised:
        await serve(response, client)
    assert isinstance(raised.value, TimeoutError)  # as sse-starlette's SendTimeoutError
    assert cleanup.done.is_set()


async def test_raise_errors_keeps_a_clean_stream_clean() -> None:
    client = FakeClient()
    await serve(EventSourceResponse(["a", "b"], raise_errors=True), client)
    assert client.body == b"data: a\n\ndata: b\n\n" and client.ended


# -- ping_interval ---------------------------------------------------------------------------------
BAD_PINGS = [(-1, ValueError), (-0.5, ValueError), ("5", TypeError), (True, TypeError)]


@pytest.mark.parametrize(("value", "error"), [*BAD_PINGS, (None, TypeError)])
def test_ping_interval_is_checked_on_assignment(value: Any, error: type[Exception]) -> None:
    response = EventSourceResponse([])
    with pytest.raises(error):
        response.ping_interval = value
    assert response.ping_interval == 15.0  # unchanged


@pytest.mark.parametrize(("value", "error"), BAD_PINGS)
def test_ping_is_checked_when_the_response_is_made(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        EventSourceResponse([], ping=value)


def test_ping_interval_reads_back_and_zero_disables() -> None:
    response = EventSourceResponse([], ping=3)
    assert response.ping_interval == 3.0
    response.ping_interval = 0
    assert response.ping_interval == 0.0
    assert NDJSONResponse([]).ping_interval == 0.0


@pytest.mark.parametrize("kwargs", [{"cleanup_timeout": -1}, {"cleanup_timeout": -0.5}])
def test_negative_cleanup_timeout_is_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        EventSourceResponse([], **kwargs)


# -- WebSocket denial ------------------------------------------------------------------------------
class WebSocketPeer(FakeClient):
    """A WebSocket scope's ``receive``: ``websocket.connect``, then the disconnect."""

    async def receive(self) -> Message:
        if not self._request_given:
            self._request_given = True
            return {"type": "websocket.connect"}
        await self.gone.wait()
        return {"type": "websocket.disconnect", "code": 1006}


async def test_a_websocket_scope_gets_the_response_as_a_denial() -> None:
    client = WebSocketPeer()
    await serve(EventSourceResponse(["a", "b"]), client, websocket_scope())
    kinds = [m["type"] for m in client.messages]
    assert kinds[0] == "websocket.http.response.start"
    assert set(kinds[1:]) == {"websocket.http.response.body"}
    body = b"".join(m["body"] for m in client.messages[1:])
    assert body == b"data: a\n\ndata: b\n\n"
    assert client.messages[-1]["more_body"] is False


async def test_websocket_disconnect_is_the_peer_gone() -> None:
    cleanup = Cleanup()
    closed: list[Message] = []

    async def on_close(message: Message) -> None:
        closed.append(message)

    client = WebSocketPeer()
    response = EventSourceResponse(endless(cleanup), client_close_handler_callable=on_close)
    async with streaming(response, client, websocket_scope()) as task:
        await client.wait_for(lambda: len(client.messages) >= 2)
        client.disconnect()
        await task
    assert cleanup.done.is_set()
    assert closed == [{"type": "websocket.disconnect", "code": 1006}]
