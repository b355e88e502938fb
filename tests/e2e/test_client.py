"""The SSE client against a real uvicorn server, with the fault proxy in between.

Every wait is bounded: ``asyncio.timeout`` around each scenario, ``eventually`` for
server-side facts (``/_log``), generous lower bounds only where a delay is the point.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from mianzhang import EventTooLarge, ReconnectExhausted, ResponseRejected, ServerSentEvent
from mianzhang.client import Backoff, EventStream, ResetEvent, connect, connect_sync
from tests._support.faultproxy import FaultProxy
from tests._support.procs import ServerProcess, free_port, uvicorn_process
from tests._support.wait import eventually

pytestmark = pytest.mark.e2e

APP = "tests.e2e.apps.client_app:create_app"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with uvicorn_process(APP, factory=True) as proc:
        yield proc


@pytest.fixture
def proxy(server: ServerProcess) -> Iterator[FaultProxy]:
    with FaultProxy(server.port) as p:
        yield p


@pytest.fixture
def key() -> str:
    return uuid.uuid4().hex


def server_log(server: ServerProcess, key: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{server.url}/_log", params={"key": key}, timeout=5)
    result: list[dict[str, Any]] = response.json()
    return result


async def logged(server: ServerProcess, key: str, count: int) -> list[dict[str, Any]]:
    """The server's log for ``key`` once it holds ``count`` requests (polled, bounded)."""
    async with httpx.AsyncClient(base_url=server.url) as client:

        async def enough() -> bool:
            return len((await client.get("/_log", params={"key": key})).json()) >= count

        await eventually(enough)
    return server_log(server, key)


def numbers(events: list[ServerSentEvent]) -> list[int]:
    return [orjson.loads(e.data)["i"] for e in events]


async def collect(stream: EventStream, timeout: float = 30) -> list[ServerSentEvent]:
    async with asyncio.timeout(timeout):
        return [event async for event in stream]


async def test_resumes_with_last_event_id_after_the_proxy_resets(
    server: ServerProcess, proxy: FaultProxy, key: str
) -> None:
    url = f"{proxy.url()}/events"
    params = {"key": key, "n": 40, "delay": 0.02}
    events: list[ServerSentEvent] = []
    async with asyncio.timeout(30), connect(url, params=params, retry=50) as stream:
        async for event in stream:
            events.append(event)
            if len(events) == 10:
                assert proxy.reset_all() == 1
        assert stream.reconnects >= 2  # the reset, then the 204 after the last event
    assert numbers(events) == list(range(1, 41))  # every event exactly once, in order
    log = server_log(server, key)
    assert log[0]["last_event_id"] is None
    resumed = int(log[1]["last_event_id"])
    assert 10 <= resumed < 40
    assert log[-1]["status"] == 204 and log[-1]["last_event_id"] == "40"
    assert proxy.stats().resets == 1


async def test_every_event_exactly_once_across_cuts_mid_frame(
    server: ServerProcess, proxy: FaultProxy, key: str
) -> None:
    # ~140-byte events; each connection is cut after 611 bytes (headers included), which lands
    # inside a frame, so every connection ends with a partial event the client must drop.
    proxy.close_after(611)
    params = {"key": key, "n": 30, "pad": 100}
    async with connect(f"{proxy.url()}/events", params=params, retry=10) as stream:
        events = await collect(stream)
    assert numbers(events) == list(range(1, 31))
    cuts = proxy.stats().cuts
    assert cuts >= 5
    log = server_log(server, key)
    resumed = [int(e["last_event_id"]) for e in log[1:]]
    # never backwards (a repeat is possible: a cut can also hit a short 204 on a kept-alive
    # connection, and the client then asks again with the same id)
    assert resumed == sorted(resumed), resumed


async def test_server_retry_is_honoured(server: ServerProcess, key: str) -> None:
    started = time.monotonic()
    async with connect(f"{server.url}/script/retry", params={"key": key}) as stream:
        events = await collect(stream)
        assert stream.retry == 700
    assert [e.data for e in events] == ["one"]
    log = server_log(server, key)
    gap = log[1]["t"] - log[0]["t"]
    # 700 ms from the server, not the client's 3000 ms default (generous bounds).
    assert 0.6 <= gap < 2.9, gap
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("path", "status", "content_type"),
    [
        ("/status/404", 404, "text/plain; charset=utf-8"),
        ("/status/500", 500, "text/plain; charset=utf-8"),
        ("/text", 200, "text/plain; charset=utf-8"),
    ],
)
async def test_rejections_are_not_retried(
    server: ServerProcess, key: str, path: str, status: int, content_type: str
) -> None:
    with pytest.raises(ResponseRejected) as info:
        async with connect(f"{server.url}{path}", params={"key": key, "size": 100_000}):
            pytest.fail("a rejected response opened a stream")
    assert (info.value.status_code, info.value.content_type) == (status, content_type)
    assert 0 < len(info.value.body) <= 64 * 1024
    assert len(server_log(server, key)) == 1  # no retry before raising (and no task after)


async def test_204_stops_reconnecting(server: ServerProcess, key: str) -> None:
    async with connect(f"{server.url}/events", params={"key": key, "n": 3}, retry=20) as s:
        events = await collect(s)
        assert s.reconnects == 1
    assert numbers(events) == [1, 2, 3]
    log = server_log(server, key)
    assert [(e["status"], e["last_event_id"]) for e in log] == [(200, None), (204, "3")]


async def test_max_event_size_raises_without_reconnecting(server: ServerProcess, key: str) -> None:
    async with connect(
        f"{server.url}/big", params={"key": key, "size": 200_000}, max_event_size=10_000
    ) as stream:
        with pytest.raises(EventTooLarge):
            await collect(stream)
    assert len(server_log(server, key)) == 1


async def test_unterminated_events_id_is_not_used(server: ServerProcess, key: str) -> None:
    async with connect(f"{server.url}/script/unterminated", params={"key": key}, retry=10) as s:
        assert [e.data for e in await collect(s)] == ["one"]
    assert [e["last_event_id"] for e in server_log(server, key)] == [None, "1"]
    other = uuid.uuid4().hex
    async with connect(
        f"{server.url}/script/unterminated-only", params={"key": other}, retry=10
    ) as s:
        assert await collect(s) == []
    assert [e["last_event_id"] for e in server_log(server, other)] == [None, None]


async def test_utf8_last_event_id_round_trips(server: ServerProcess, key: str) -> None:
    async with connect(f"{server.url}/script/unicode", params={"key": key}, retry=10) as s:
        await collect(s)
    assert [e["last_event_id"] for e in server_log(server, key)] == [None, "ünï-☃"]


async def test_heartbeat_timeout_replaces_a_stalled_connection(
    server: ServerProcess, proxy: FaultProxy, key: str
) -> None:
    params = {"key": key, "n": 3, "hold": 1, "hb": 0.1}
    async with (
        asyncio.timeout(30),
        connect(f"{proxy.url()}/events", params=params, retry=10, read_timeout=0.6) as stream,
    ):
        assert numbers([await anext(stream) for _ in range(3)]) == [1, 2, 3]
        proxy.stall()  # heartbeats stop reaching the client; the server keeps the socket
        pending = asyncio.create_task(anext(stream))
        try:
            # the client gave up on the stalled connection (held by the proxy) and opened another
            await proxy.wait_for_async(lambda s: s.connections == 2 and s.active == 2, 10)
            proxy.resume()
            log = await logged(server, key, 2)
            assert log[1]["last_event_id"] == "3"
            assert stream.reconnects == 1
        finally:
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
    await proxy.wait_for_async(lambda s: s.active == 0, 10)


async def test_heartbeats_keep_a_quiet_connection_alive(server: ServerProcess, key: str) -> None:
    params = {"key": key, "n": 2, "delay": 1.5, "hb": 0.1}
    async with connect(f"{server.url}/events", params=params, retry=10, read_timeout=0.5) as stream:
        assert numbers(await collect(stream)) == [1, 2]
    # no read timeout in the 1.5 s without events: only the final 204 reconnect
    log = server_log(server, key)
    assert [e["last_event_id"] for e in log] == [None, "2"]


async def test_reconnect_event_closes_and_reconnects_after_its_hint(
    server: ServerProcess, proxy: FaultProxy, key: str
) -> None:
    async with connect(f"{proxy.url()}/script/reconnect", params={"key": key}) as stream:
        events = await collect(stream)
        assert stream.retry == 300
    assert [e.data for e in events] == ["one"]  # the reconnect event is not data
    log = server_log(server, key)
    assert [e["last_event_id"] for e in log] == [None, "1"]
    assert 0.25 <= log[1]["t"] - log[0]["t"] < 2.9  # the hint, not the 3 s default
    # the first connection was held open by the server: the client closed it itself
    await proxy.wait_for_async(lambda s: s.active == 0, 10)


async def test_reset_event_is_typed(server: ServerProcess, key: str) -> None:
    async with connect(f"{server.url}/script/reset", params={"key": key}, retry=10) as s:
        first, second = await collect(s)
    assert isinstance(first, ResetEvent)
    assert (first.reason, first.requested, first.first_available, first.epoch) == (
        "epoch",
        "e1-5",
        "e2-1",
        "e2",
    )
    assert second.data == "first" and second.id == "e2-1"


async def test_post_json_is_streamed(server: ServerProcess, key: str) -> None:
    async with connect(
        f"{server.url}/echo", method="POST", json={"q": [1, 2]}, params={"key": key}, retry=10
    ) as s:
        events = await collect(s)
    assert [orjson.loads(e.data) for e in events] == [{"q": [1, 2]}]
    assert [e["method"] for e in server_log(server, key)] == ["POST", "POST"]


async def test_cancelled_reader_leaves_no_connection(
    server: ServerProcess, proxy: FaultProxy, key: str
) -> None:
    got: list[ServerSentEvent] = []
    three = asyncio.Event()

    async def read(client: httpx.AsyncClient) -> None:
        params = {"key": key, "n": 10_000, "delay": 0.05}
        async with connect(f"{proxy.url()}/events", client=client, params=params) as stream:
            async for event in stream:
                got.append(event)
                if len(got) == 3:
                    three.set()

    async with httpx.AsyncClient() as client:
        task = asyncio.create_task(read(client))
        async with asyncio.timeout(10):
            await three.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await proxy.wait_for_async(lambda s: s.active == 0, 10)
        assert not client.is_closed  # the caller's client survives and still works
        response = await client.get(f"{server.url}/_log", params={"key": key})
        assert response.status_code == 200


def test_sync_client_resumes_after_reset_and_stops_on_204(
    server: ServerProcess, proxy: FaultProxy, key: str
) -> None:
    params = {"key": key, "n": 20, "delay": 0.02}
    events = []
    with connect_sync(f"{proxy.url()}/events", params=params, retry=20) as stream:
        for event in stream:
            events.append(event)
            if len(events) == 5:
                proxy.reset_all()
        assert stream.reconnects >= 2
    assert numbers(events) == list(range(1, 21))
    log = server_log(server, key)
    assert int(log[1]["last_event_id"]) >= 5
    assert log[-1]["status"] == 204


def test_sync_client_rejection_and_reconnect_event(server: ServerProcess, key: str) -> None:
    with (
        pytest.raises(ResponseRejected) as info,
        connect_sync(f"{server.url}/status/404", params={"key": key}),
    ):
        pytest.fail("a rejected response opened a stream")
    assert info.value.status_code == 404
    other = uuid.uuid4().hex
    with connect_sync(f"{server.url}/script/reconnect", params={"key": other}) as stream:
        assert [e.data for e in stream] == ["one"]
    assert [e["last_event_id"] for e in server_log(server, other)] == [None, "1"]


async def test_refused_and_reset_connections_are_retried_then_exhausted(
    proxy: FaultProxy,
) -> None:
    fast = Backoff(max_delay=0.05)
    proxy.reject_new()  # accepted, then RST before any response
    with pytest.raises(ReconnectExhausted) as info:
        async with connect(proxy.url(), retry=10, backoff=fast, max_reconnects=2):
            pytest.fail("connected through a proxy that rejects everything")
    assert isinstance(info.value.__cause__, httpx.TransportError)
    assert proxy.stats().rejected == 3  # the first attempt and two reconnects
    port = free_port()  # nothing listens here: connection refused
    with pytest.raises(ReconnectExhausted) as info:
        async with connect(f"http://127.0.0.1:{port}/", retry=10, backoff=fast, max_reconnects=1):
            pass
    assert isinstance(info.value.__cause__, httpx.ConnectError)
