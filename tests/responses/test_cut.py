"""Cut means cut: what a stream does with the server's transport (the ASGI extension
``mianzhang.transport``) when it is offered: reset on a cut, never on a clean end, the send
buffer at the start, and the acknowledgement watchdog (``_responses._connection``)."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.types import Scope

from mianzhang import EventSourceResponse, StreamSupervisor, TextStreamResponse
from mianzhang._responses import _cuts
from mianzhang._responses._connection import ConnectionGuard, check_interval
from mianzhang._responses._cuts import CUT_BATCH
from mianzhang._responses._transport import TRANSPORT_EXTENSION, StreamTransport
from tests._support.asgi import http_scope
from tests._support.wait import eventually
from tests.responses._peer import Cleanup, FakeClient, endless, serve, streaming


class FakeTransport:
    """A server's transport as the stream sees it: ``unacknowledged`` bytes, the peer's
    ``acknowledged`` count (``None``: unknown), advanced by ``ack_step`` at each read."""

    def __init__(
        self,
        *,
        unacknowledged: int = 0,
        acknowledged: int | None = 0,
        ack_step: int = 0,
        stream_send_buffer: int = 0,
        stream_unsent_limit: int = 0,
    ) -> None:
        self.stream_send_buffer = stream_send_buffer
        self.stream_unsent_limit = stream_unsent_limit
        self.unsent_limits: list[int] = []
        self.unacknowledged = unacknowledged
        self.acknowledged = acknowledged
        self.ack_step = ack_step
        self.send_buffers: list[int] = []
        self.aborted_at: list[float] = []
        self.acknowledged_reads = 0
        self.unacknowledged_reads = 0
        self.last_progress = 0.0  # loop time the acknowledged count last moved
        self.reads = asyncio.Event()  # set at each read of either count

    def set_send_buffer(self, size: int) -> None:
        self.send_buffers.append(size)

    def limit_unsent(self, size: int) -> None:
        self.unsent_limits.append(size)

    def unacknowledged_bytes(self) -> int:
        self.unacknowledged_reads += 1
        self.reads.set()
        return self.unacknowledged

    def acknowledged_bytes(self) -> int | None:
        self.acknowledged_reads += 1
        self.reads.set()
        if self.acknowledged is not None and self.ack_step:
            self.acknowledged += self.ack_step
            self.last_progress = asyncio.get_running_loop().time()
        return self.acknowledged

    def abort(self) -> None:
        self.aborted_at.append(asyncio.get_running_loop().time())

    async def wait_reads(self, count: int) -> None:
        while self.acknowledged_reads + self.unacknowledged_reads < count:
            self.reads.clear()
            await self.reads.wait()


def offering(transport: FakeTransport) -> Scope:
    return http_scope(extensions={TRANSPORT_EXTENSION: {"transport": transport}})


def test_the_fake_has_the_protocols_shape() -> None:
    assert isinstance(FakeTransport(), StreamTransport)


# -- resets ------------------------------------------------------------------------------------
async def test_a_blocked_send_timeout_resets_the_connection() -> None:
    transport = FakeTransport(unacknowledged=10, acknowledged=None)  # no watchdog
    supervisor = StreamSupervisor(hook_signals=False)
    client = FakeClient()
    client.gate = asyncio.Event()  # never set: a frozen reader
    cleanup = Cleanup()
    response = EventSourceResponse(endless(cleanup), send_timeout=0.05, supervisor=supervisor)
    await serve(response, client, offering(transport))
    assert len(transport.aborted_at) == 1
    assert supervisor.stats.send_timeouts == 1
    assert cleanup.done.is_set()


@pytest.mark.parametrize("unacknowledged", [0, 4096])
async def test_a_complete_body_is_never_reset(unacknowledged: int) -> None:
    transport = FakeTransport(unacknowledged=unacknowledged)
    client = FakeClient()
    await serve(EventSourceResponse(["a", "b"]), client, offering(transport))
    assert client.ended
    assert transport.aborted_at == []


async def test_an_error_event_ends_the_body_cleanly_without_a_reset() -> None:
    async def fail_late() -> AsyncIterator[str]:
        yield "first"
        raise RuntimeError("boom")

    transport = FakeTransport(unacknowledged=4096)
    client = FakeClient()
    await serve(EventSourceResponse(fail_late()), client, offering(transport))
    assert client.ended and b"event: error" in client.body
    assert transport.aborted_at == []


@pytest.mark.parametrize(("unacknowledged", "resets"), [(0, 0), (4096, 1)])
async def test_an_aborted_body_resets_only_a_peer_that_holds_bytes_back(
    unacknowledged: int, resets: int
) -> None:
    async def fail_late() -> AsyncIterator[str]:
        yield "first"
        raise RuntimeError("boom")

    transport = FakeTransport(unacknowledged=unacknowledged)
    client = FakeClient()
    await serve(TextStreamResponse(fail_late()), client, offering(transport))
    assert not client.ended  # plain text has no in-band error: the body is aborted
    assert len(transport.aborted_at) == resets


async def test_a_disconnect_is_not_reset_again() -> None:
    transport = FakeTransport(unacknowledged=4096)
    client = FakeClient()
    cleanup = Cleanup()
    async with streaming(EventSourceResponse(endless(cleanup)), client, offering(transport)) as t:
        await client.wait_body(b"data: a")
        client.disconnect()
        await t
    assert transport.aborted_at == []


@pytest.mark.parametrize(("configured", "applied"), [(65536, [65536]), (0, [])])
async def test_the_send_buffer_and_unsent_limit_are_set_when_the_stream_starts(
    configured: int, applied: list[int]
) -> None:
    transport = FakeTransport(stream_send_buffer=configured, stream_unsent_limit=configured)
    await serve(EventSourceResponse(["a"]), FakeClient(), offering(transport))
    assert transport.send_buffers == applied
    assert transport.unsent_limits == applied


async def test_without_the_extension_nothing_changes() -> None:
    client = FakeClient()
    client.gate = asyncio.Event()
    supervisor = StreamSupervisor(hook_signals=False)
    response = EventSourceResponse(["a"], send_timeout=0.05, supervisor=supervisor)
    await serve(response, client, http_scope(extensions={"http.response.trailers": {}}))
    assert supervisor.stats.send_timeouts == 1


# -- the watchdog ------------------------------------------------------------------------------
async def test_the_watchdog_cuts_a_peer_that_stopped_acknowledging() -> None:
    """Every send returns at once (the kernel takes it all), yet the peer acknowledges
    nothing: the stream is cut, reset, counted as a send timeout, its iterator closed."""
    timeout = 0.2
    transport = FakeTransport(unacknowledged=4096, acknowledged=100)
    supervisor = StreamSupervisor(hook_signals=False)
    cleanup = Cleanup()
    client = FakeClient()
    response = EventSourceResponse(endless(cleanup), send_timeout=timeout, supervisor=supervisor)
    await serve(response, client, offering(transport))  # returns by itself: the cut ended it
    assert client.blocked_sends == 0
    assert transport.aborted_at
    assert supervisor.stats.send_timeouts == 1
    assert supervisor.stats.disconnected == 0
    assert cleanup.done.is_set()


async def test_the_watchdog_cuts_only_after_send_timeout_without_progress() -> None:
    """Acknowledgements move for a while, then stop: the cut comes no sooner than
    ``send_timeout`` after the last one the watchdog saw."""
    timeout = 0.2
    transport = FakeTransport(unacknowledged=4096, acknowledged=0, ack_step=10)
    client = FakeClient()
    cleanup = Cleanup()
    response = EventSourceResponse(endless(cleanup), send_timeout=timeout)
    async with streaming(response, client, offering(transport)) as task:
        await transport.wait_reads(12)  # a few checks with progress
        assert transport.aborted_at == []
        transport.ack_step = 0  # the peer stops reading
        await task
    assert transport.aborted_at[0] - transport.last_progress >= timeout - 1e-3


async def test_the_watchdog_never_cuts_a_peer_that_keeps_acknowledging() -> None:
    timeout = 0.2
    transport = FakeTransport(unacknowledged=4096, acknowledged=0, ack_step=1)
    supervisor = StreamSupervisor(hook_signals=False)
    client = FakeClient()
    cleanup = Cleanup()
    response = EventSourceResponse(endless(cleanup), send_timeout=timeout, supervisor=supervisor)
    async with streaming(response, client, offering(transport)) as task:
        # checks spanning several send timeouts (one per quarter of it)
        await transport.wait_reads(2 * 4 * 4)
        client.disconnect()
        await task
    assert transport.aborted_at == []
    assert supervisor.stats.send_timeouts == 0
    assert supervisor.stats.disconnected == 1


def _stalls() -> tuple[list[None], Any]:
    stalls: list[None] = []
    return stalls, lambda: stalls.append(None)


async def test_no_timer_while_nothing_is_unacknowledged() -> None:
    transport = FakeTransport(unacknowledged=0, acknowledged=0)
    stalls, on_stall = _stalls()
    guard = ConnectionGuard(transport, 0.2, on_stall)
    probe = transport.acknowledged_reads  # whether acknowledgements can be read at all
    for _ in range(100):
        guard.sent()
    assert guard.watching
    assert transport.acknowledged_reads == probe + 1  # one timer armed, once
    await transport.wait_reads(probe + 2)  # the check ran
    assert not guard.watching  # all acknowledged: no timer until the next send
    assert transport.acknowledged_reads == probe + 1
    assert stalls == []
    guard.sent()
    assert guard.watching
    guard.release(complete=True, stop_reason=None)
    assert not guard.watching


@pytest.mark.parametrize(
    ("send_timeout", "acknowledged"), [(None, 0), (0.2, None)], ids=["no-timeout", "no-acks"]
)
async def test_no_watchdog_without_a_timeout_or_acknowledgements(
    send_timeout: float | None, acknowledged: int | None
) -> None:
    transport = FakeTransport(unacknowledged=4096, acknowledged=acknowledged)
    stalls, on_stall = _stalls()
    guard = ConnectionGuard(transport, send_timeout, on_stall)
    guard.sent()
    assert not guard.watching
    assert stalls == []


def test_the_check_interval_is_a_quarter_of_the_timeout_at_most_five_seconds() -> None:
    assert check_interval(2.0) == 0.5
    assert check_interval(30.0) == 5.0


# -- cuts in batches (``_cuts``) ---------------------------------------------------------------
async def test_a_crowd_cut_together_is_torn_down_completely() -> None:
    count = 2 * CUT_BATCH + 5
    transports = [FakeTransport(unacknowledged=10, acknowledged=None) for _ in range(count)]
    supervisor = StreamSupervisor(hook_signals=False)
    cleanups = [Cleanup() for _ in range(count)]
    clients = [FakeClient() for _ in range(count)]
    for client in clients:
        client.gate = asyncio.Event()  # frozen readers, cut at the same moment
    responses = [
        EventSourceResponse(endless(cleanup), send_timeout=0.05, supervisor=supervisor)
        for cleanup in cleanups
    ]
    async with asyncio.timeout(10):
        await asyncio.gather(
            *(
                serve(r, c, offering(t))
                for r, c, t in zip(responses, clients, transports, strict=True)
            )
        )
    assert all(len(t.aborted_at) == 1 for t in transports)
    assert supervisor.stats.send_timeouts == count
    assert all(cleanup.done.is_set() for cleanup in cleanups)
    assert supervisor.stats.active == 0


async def test_a_cut_stream_cancelled_while_waiting_for_its_turn_still_tears_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_cuts, "CUT_BATCH", 0)  # no turn is ever given: the cut waits
    transport = FakeTransport(unacknowledged=10, acknowledged=None)
    supervisor = StreamSupervisor(hook_signals=False)
    client = FakeClient()
    client.gate = asyncio.Event()
    cleanup = Cleanup()
    response = EventSourceResponse(endless(cleanup), send_timeout=0.05, supervisor=supervisor)
    task = asyncio.ensure_future(serve(response, client, offering(transport)))
    await eventually(lambda: bool(_cuts.loop_cuts()._waiters), timeout=5)
    assert transport.aborted_at == [] and not cleanup.done.is_set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(transport.aborted_at) == 1  # reset, iterator closed, stream counted
    assert cleanup.done.is_set()
    assert supervisor.stats.send_timeouts == 1 and supervisor.stats.active == 0


async def test_each_cut_runs_in_its_own_streams_context() -> None:
    """The checks share one timer; a stall is still reported (logged, called back) in the
    context of the stream that stalled, never in that of the stream that armed the timer."""
    owner: contextvars.ContextVar[str] = contextvars.ContextVar("owner", default="none")
    seen: dict[str, str] = {}
    done = asyncio.Event()

    async def stream(name: str) -> ConnectionGuard:
        owner.set(name)
        transport = FakeTransport(unacknowledged=10, acknowledged=0)

        def on_stall() -> None:
            seen[name] = owner.get()
            if len(seen) == 2:
                done.set()

        guard = ConnectionGuard(transport, 0.08, on_stall)
        guard.sent()
        return guard

    guards = [await asyncio.create_task(stream(name)) for name in ("first", "second")]
    await asyncio.wait_for(done.wait(), 10)
    assert seen == {"first": "first", "second": "second"}
    assert not any(guard.watching for guard in guards)


async def test_a_push_from_a_loop_callback_arms_the_watchdog() -> None:
    """A live source pushes from a loop callback, where the loop's objects cannot be looked
    up (no task): the guard has its watchdog from its stream's task."""
    transport = FakeTransport(unacknowledged=10, acknowledged=0)
    stalls, on_stall = _stalls()
    guard = ConnectionGuard(transport, 0.2, on_stall)  # made in the stream's task
    loop = asyncio.get_running_loop()
    pushed: asyncio.Future[None] = loop.create_future()

    def push() -> None:  # a fan-out pass: no current task
        assert asyncio.current_task() is None
        try:
            guard.sent()
        except BaseException as exc:  # handed to the test
            pushed.set_exception(exc)
        else:
            pushed.set_result(None)

    loop.call_soon(push)
    await pushed
    assert guard.watching
    guard.release(complete=True, stop_reason=None)
    assert not guard.watching and stalls == []
