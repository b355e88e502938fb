"""Heartbeat: a ping only after ``ping`` idle seconds, never while data flows.

Two tests pace their generator with ``asyncio.sleep``: there the sleep is the stimulus under
test (data flowing at a given rate), not a synchronisation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mianzhang import EventSourceResponse, ServerSentEvent
from tests.responses._peer import Cleanup, FakeClient, datas, decode, endless, serve, streaming


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
            # the stimulus under test, not a wait: data every fifth of the interval for 1.5 s
            await asyncio.sleep(0.1)

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
    """The silence lasts until a twin stream with a 0.05 s heartbeat has pinged four times:
    four times the interval that would otherwise ping."""
    twin = FakeClient()
    client = FakeClient()

    async def gen() -> AsyncIterator[str]:
        yield "a"
        await twin.wait_for(lambda: twin.body.count(b": ping\n") >= 4)
        yield "b"

    async with streaming(EventSourceResponse(endless(Cleanup()), ping=0.05), twin):
        await serve(EventSourceResponse(gen(), ping=0), client)
        twin.disconnect()
    assert client.body == b"data: a\n\ndata: b\n\n"
