"""_send.py: a send's first step runs at once; only a send that suspends is awaited (and only
then is the send timeout armed); the rest of a suspended send runs as a task would run it."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from mianzhang import EventSourceResponse
from mianzhang._responses._send import finish_send, start_send
from tests.responses._peer import FakeClient, serve, streaming


@pytest.fixture
def timeouts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float | None]]:
    """Every ``asyncio.timeout`` the response engine arms while the test runs (its delay)."""
    armed: list[float | None] = []
    original = asyncio.timeout

    def counting(delay: float | None) -> Any:
        if sys._getframe(1).f_globals["__name__"].startswith("mianzhang."):
            armed.append(delay)
        return original(delay)

    monkeypatch.setattr(asyncio, "timeout", counting)
    yield armed


async def test_sends_that_complete_at_once_arm_no_timer(timeouts: list[float | None]) -> None:
    client = FakeClient()
    items = [f"event {n}" for n in range(100)]
    await serve(EventSourceResponse(items, open_timeout=0, send_timeout=30), client)
    assert client.ended
    assert timeouts == []


async def test_a_send_that_suspends_is_awaited_under_the_send_timeout(
    timeouts: list[float | None],
) -> None:
    client = FakeClient()
    client.gate = asyncio.Event()

    async def events() -> AsyncIterator[str]:
        yield "one"
        await asyncio.Event().wait()

    response = EventSourceResponse(events(), open_timeout=0, send_timeout=30)
    async with streaming(response, client):
        await client.wait_for(lambda: client.blocked_sends == 1)
        assert timeouts == [30]
        client.gate.set()
        await client.wait_body(b"data: one")


async def test_start_send_runs_the_first_step_only() -> None:
    steps: list[str] = []
    gate = asyncio.Event()

    async def send(message: Any) -> None:
        steps.append("before")
        await gate.wait()
        steps.append(message["body"].decode())

    pending = start_send(send, {"body": b"after"})
    assert pending is not None
    assert steps == ["before"]
    finishing = asyncio.create_task(finish_send(pending))
    gate.set()
    await finishing
    assert steps == ["before", "after"]

    async def at_once(message: Any) -> None:
        steps.append("at once")

    assert start_send(at_once, {}) is None
    assert steps[-1] == "at once"


def blocked_send(cleaned: list[str]) -> Callable[[Any], Awaitable[None]]:
    """A send that never returns; its ``finally`` records ``"finally"`` in ``cleaned``."""

    async def send(message: Any) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append("finally")

    return send


async def test_cancelling_finish_send_cancels_the_send_at_its_suspension() -> None:
    cleaned: list[str] = []
    pending = start_send(blocked_send(cleaned), {})
    assert pending is not None
    task = asyncio.create_task(finish_send(pending))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally"]


async def test_a_failure_of_what_the_send_awaits_is_raised_inside_the_send() -> None:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    caught: list[BaseException] = []

    async def send(message: Any) -> None:
        try:
            await future
        except LookupError as exc:
            caught.append(exc)
            raise

    pending = start_send(send, {})
    assert pending is not None
    finishing = asyncio.create_task(finish_send(pending))
    failure = LookupError("broken")
    future.set_exception(failure)
    with pytest.raises(LookupError):
        await finishing
    assert caught == [failure]


async def test_bare_yields_and_non_coroutine_sends_are_run_to_their_end() -> None:
    done: list[str] = []

    async def yields(message: Any) -> None:
        await asyncio.sleep(0)  # a bare yield
        done.append("yielded")

    pending = start_send(yields, {})
    assert pending is not None and pending.waiting is None
    await finish_send(pending)

    def future_send(message: Any) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(future.set_result, None)
        done.append("future")
        return future

    pending = start_send(future_send, {})
    assert pending is not None
    await finish_send(pending)
    assert done == ["yielded", "future"]


async def test_closing_a_pending_send_runs_its_finally() -> None:
    cleaned: list[str] = []
    pending = start_send(blocked_send(cleaned), {})
    assert pending is not None
    with contextlib.suppress(RuntimeError):
        pending.close()
    assert cleaned == ["finally"]
