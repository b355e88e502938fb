"""Delivery order and batching: items produced while the socket was busy leave as one message,
a ready item is never held back, and busy streams take turns (one batch per loop iteration)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from mianzhang import EventSourceResponse
from tests._support.asgi import http_scope
from tests.responses._peer import TIMEOUT, Cleanup, FakeClient, datas, endless, serve


async def test_a_fast_generator_is_coalesced_into_few_messages_in_order() -> None:
    n = 5000
    pad = "x" * 80

    async def fast() -> AsyncIterator[str]:
        for i in range(n):
            yield f"{i} {pad}"

    client = FakeClient()
    await serve(EventSourceResponse(fast(), ping=0), client)
    expected = b"".join(f"data: {i} {pad}\n\n".encode() for i in range(n))
    assert client.body == expected  # every byte, in order
    messages = [m for m in client.body_messages if m["body"]]
    assert len(messages) < n // 20, len(messages)
    item = len(f"data: {n} {pad}\n\n")
    assert max(len(m["body"]) for m in messages) <= 64 * 1024 + item
    assert client.ended


async def test_coalescing_also_for_a_sync_list() -> None:
    items = [f"{i}" for i in range(3000)]
    client = FakeClient()
    await serve(EventSourceResponse(items, ping=0), client)
    assert datas(client.body) == items
    assert len([m for m in client.body_messages if m["body"]]) <= 3


async def test_an_event_that_is_ready_is_never_held_back() -> None:
    """The generator waits until event i was *sent* before producing i+1: if the response held
    a ready event back to coalesce it with the next one, this would deadlock (and time out)."""
    n = 50
    client = FakeClient()

    async def gen() -> AsyncIterator[str]:
        for i in range(n):
            yield f"e{i}"
            await client.wait_body(f"data: e{i}\n\n".encode())

    await serve(EventSourceResponse(gen(), ping=0), client)
    bodies = [m["body"] for m in client.body_messages if m["body"]]
    assert bodies == [f"data: e{i}\n\n".encode() for i in range(n)]


async def test_a_new_stream_does_not_wait_for_a_full_batch_of_every_busy_stream() -> None:
    """Busy streams produce one ``max_buffer`` batch per loop iteration between them (not one
    each), so a stream that starts among them sends its first event after a few batches.

    Each bulk generator never awaits and its sends never block: only the engine's turns
    decide when a bulk producer stops. If every bulk stream produced a full batch in every
    iteration, the new stream's first event would come after at least one batch per bulk
    stream (``bulk_streams * batch`` items); with turns it comes after a few batches.
    """
    bulk_streams = 20
    max_buffer = 64 * 1024
    item = b"data: " + b"x" * 92 + b"\n\n"  # 100 bytes, already encoded
    batch = max_buffer // len(item)  # items in one batch
    produced = 0  # items made by all the bulk generators
    cleanups = [Cleanup() for _ in range(bulk_streams)]
    clients = [FakeClient() for _ in cleanups]

    async def bulk(cleanup: Cleanup) -> AsyncIterator[bytes]:
        nonlocal produced
        try:
            while True:
                cleanup.produced += 1
                produced += 1
                yield item
        finally:
            cleanup.done.set()

    def response(content: AsyncIterator[Any]) -> EventSourceResponse:
        return EventSourceResponse(content, ping=0, max_buffer=max_buffer, send_timeout=None)

    tasks = [
        asyncio.create_task(response(bulk(c))(http_scope(), client.receive, client.send))
        for c, client in zip(cleanups, clients, strict=True)
    ]
    fresh_cleanup = Cleanup()
    fresh = FakeClient()
    produced_at_first_body: list[int] = []

    def on_body(body: bytes) -> None:
        if not produced_at_first_body:
            produced_at_first_body.append(produced)

    fresh.on_body = on_body
    try:
        async with asyncio.timeout(TIMEOUT):
            for cleanup, client in zip(cleanups, clients, strict=True):  # all of them busy
                await client.wait_for(lambda c=cleanup: c.produced >= 3 * batch)
            produced_at_start = produced
            tasks.append(
                asyncio.create_task(
                    response(endless(fresh_cleanup))(http_scope(), fresh.receive, fresh.send)
                )
            )
            await fresh.wait_body(b"data: a\n\n")
            assert fresh.body_messages[0]["body"] == b"data: a\n\n"
            during = produced_at_first_body[0] - produced_at_start
            # measured: about 3 batches with turns, about 2 per bulk stream without them
            assert during < bulk_streams * batch, (during, batch)
            assert produced > produced_at_start  # the bulk streams were still busy meanwhile
            for client in [*clients, fresh]:
                client.disconnect()
            await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
    assert all(c.done.is_set() for c in cleanups)
    assert fresh_cleanup.done.is_set()
    assert not any(client.ended for client in [*clients, fresh])  # ended by the disconnects
