"""The hand-written ASGI peer of the response tests, and what they share.

``FakeClient`` plays one HTTP request's ``receive``/``send`` and records what the response
sends; every wait on it is an awaited condition (``FakeClient.wait_for``) bounded by
``serve``/``streaming``'s ``asyncio.timeout``. ``Cleanup`` records that a generator's
``finally`` ran, from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.types import Message, Scope

from mianzhang import ServerSentEvent, SSEDecoder
from tests._support.asgi import http_scope

TIMEOUT = 5.0


class FakeClient:
    """One HTTP request's ``receive``/``send``, recording what the response sends.

    * ``receive`` gives the request once, then waits for ``gone`` and says ``http.disconnect``
      (with ``disconnect_when_complete``, also once the body is complete, as uvicorn does).
    * ``gate``: while not set, body sends block (a reader that stopped reading); ``send_error``
      makes body sends raise instead.
    """

    def __init__(self, *, disconnect_when_complete: bool = False) -> None:
        self.messages: list[Message] = []
        self.gone = asyncio.Event()
        self.gate: asyncio.Event | None = None
        self.send_error: BaseException | None = None
        self.blocked_sends = 0
        self.on_body: Callable[[bytes], None] | None = None
        self._changed = asyncio.Event()
        self._request_given = False
        self.disconnect_when_complete = disconnect_when_complete

    async def receive(self) -> Message:
        if not self._request_given:
            self._request_given = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.body":
            if self.send_error is not None:
                raise self.send_error
            if self.gate is not None and not self.gate.is_set():
                self.blocked_sends += 1
                self._changed.set()
                await self.gate.wait()
        self.messages.append(message)
        if message["type"] == "http.response.body":
            if self.on_body is not None:
                self.on_body(message["body"])
            if not message.get("more_body", False) and self.disconnect_when_complete:
                self.gone.set()  # as uvicorn: receive() says http.disconnect once complete
                await asyncio.sleep(0)  # and the watcher runs before send returns
        self._changed.set()

    def disconnect(self) -> None:
        self.gone.set()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            self._changed.clear()
            await self._changed.wait()

    async def wait_body(self, needle: bytes) -> None:
        await self.wait_for(lambda: needle in self.body)

    @property
    def start(self) -> Message:
        starts = [m for m in self.messages if m["type"] == "http.response.start"]
        assert len(starts) == 1, self.messages
        return starts[0]

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(bytes(k), bytes(v)) for k, v in self.start["headers"]]

    @property
    def body_messages(self) -> list[Message]:
        return [m for m in self.messages if m["type"] == "http.response.body"]

    @property
    def body(self) -> bytes:
        return b"".join(m["body"] for m in self.body_messages)

    @property
    def ended(self) -> bool:
        """The body was terminated (``more_body`` False): the stream ended cleanly."""
        bodies = self.body_messages
        return bool(bodies) and not bodies[-1].get("more_body", False)


async def serve(response: Any, client: FakeClient, scope: Scope | None = None) -> None:
    """Run one response to its end (bounded)."""
    async with asyncio.timeout(TIMEOUT):
        await response(scope or http_scope(), client.receive, client.send)


@contextlib.asynccontextmanager
async def streaming(
    response: Any, client: FakeClient, scope: Scope | None = None
) -> AsyncIterator[asyncio.Task[None]]:
    """The response running in a task while the test talks to it; the task is always awaited."""
    task = asyncio.create_task(response(scope or http_scope(), client.receive, client.send))
    try:
        async with asyncio.timeout(TIMEOUT):
            yield task
    finally:
        if not task.done():
            task.cancel()
        await asyncio.wait((task,))


def decode(raw: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = decoder.decode(raw)
    decoder.close()
    return events


def datas(raw: bytes) -> list[str]:
    return [e.data for e in decode(raw)]


class Cleanup:
    """Records that a generator's ``finally`` ran (from any thread)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.produced = 0


async def endless(cleanup: Cleanup, first: Any = "a") -> AsyncIterator[Any]:
    """Yields ``first``, then waits forever; ``finally`` records the cleanup."""
    try:
        cleanup.produced += 1
        yield first
        await asyncio.Event().wait()
    finally:
        cleanup.done.set()
