"""When the head leaves: with ``open_timeout=0`` at once after the producer's first step (for
streams whose route checked them), so a quiet stream is not held back; a failure in that first
step is still raised (an HTTP error)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mianzhang import EventSourceResponse
from tests.responses._peer import FakeClient, serve, streaming


async def test_a_quiet_stream_sends_its_head_at_once_with_open_timeout_zero() -> None:
    quiet = asyncio.Event()
    client = FakeClient()

    async def events() -> AsyncIterator[str]:
        quiet.set()
        await asyncio.Event().wait()  # nothing to say yet
        yield "never"  # pragma: no cover

    async with streaming(EventSourceResponse(events(), open_timeout=0), client):
        await client.wait_for(lambda: bool(client.messages))
        assert quiet.is_set()
        assert client.start["status"] == 200
        assert client.body_messages == []


async def test_a_failure_in_the_first_step_is_still_an_http_error() -> None:
    async def broken() -> AsyncIterator[str]:
        raise LookupError("no such stream")
        yield "never"  # pragma: no cover

    client = FakeClient()
    with pytest.raises(LookupError):
        await serve(EventSourceResponse(broken(), open_timeout=0), client)
    assert client.messages == []


async def test_a_first_event_at_hand_leaves_right_after_the_head() -> None:
    client = FakeClient()
    await serve(EventSourceResponse(["first"], open_timeout=0), client)
    assert client.start["status"] == 200
    assert client.body.startswith(b"data: first\n\n")
