"""log/serve.py: a log stream as SSE (ids, resets, resume, 404/204) through a real ASGI app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mianzhang import ServerSentEvent, SSEDecoder, SSEEncodeError
from mianzhang.log import MemoryEventLog, Reset
from mianzhang.log.serve import StreamHost, log_events, reset_event, sse_bytes
from tests._support.wait import eventually


@pytest.fixture
async def log() -> AsyncIterator[MemoryEventLog]:
    async with MemoryEventLog() as memory:
        yield memory


@pytest.fixture
async def http(log: MemoryEventLog) -> AsyncIterator[httpx.AsyncClient]:
    host = StreamHost(log)

    async def read(request: Request) -> Response:
        return await host.reader(request, request.path_params["stream"])

    app = Starlette(routes=[Route("/s/{stream}", read)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client
    await host.aclose()


def test_reset_event_points_just_before_the_first_retained_event() -> None:
    event = reset_event(Reset("retention", "e1-3", "e1-10", "e1"))
    assert event.event == "reset"
    assert event.id == "e1-9"
    assert orjson.loads(event.data) == {
        "reason": "retention",
        "requested": "e1-3",
        "first_available": "e1-10",
        "epoch": "e1",
    }
    empty = reset_event(Reset("epoch", "old-5", None, "e2"))
    assert empty.id == "e2-0"  # nothing retained: resume from the start of the new epoch


async def test_log_events_keep_ids_names_and_multiline_data(log: MemoryEventLog) -> None:
    await log.append("s", "one")
    await log.append("s", "two\nlines", event="multi")
    await log.close("s")
    raw = b"".join(
        [item if isinstance(item, bytes) else item.encode() async for item in log_events(log, "s")]
    )
    events = SSEDecoder().decode(raw)
    assert [(e.data, e.event) for e in events] == [("one", "message"), ("two\nlines", "multi")]
    assert events[0].id.endswith("-1") and events[1].id.endswith("-2")


async def test_an_event_name_with_a_line_break_cannot_inject_fields(log: MemoryEventLog) -> None:
    await log.append("s", "x", event="evil\ndata: injected")
    await log.close("s")
    with pytest.raises(ValueError):
        async for _ in log_events(log, "s"):
            pass


async def test_reader_resumes_after_last_event_id(
    log: MemoryEventLog, http: httpx.AsyncClient
) -> None:
    ids = [await log.append("s", str(i)) for i in range(5)]
    await log.close("s")
    response = await http.get("/s/s", headers={"Last-Event-ID": ids[1]})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["x-stream-id"] == "s"
    assert [e.data for e in SSEDecoder().decode(response.content)] == ["2", "3", "4"]
    query = await http.get("/s/s", params={"last_event_id": ids[3]})
    assert [e.data for e in SSEDecoder().decode(query.content)] == ["4"]


async def test_reader_of_an_unknown_stream_is_a_404_json(http: httpx.AsyncClient) -> None:
    response = await http.get("/s/nope")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"


async def test_a_finished_stream_read_to_its_end_answers_204(
    log: MemoryEventLog, http: httpx.AsyncClient
) -> None:
    last = [await log.append("s", str(i)) for i in range(2)][-1]
    await log.close("s")
    response = await http.get("/s/s", headers={"Last-Event-ID": last})
    assert response.status_code == 204  # EventSource stops reconnecting on 204


async def test_an_id_from_lost_history_gets_a_reset_then_everything_retained(
    log: MemoryEventLog, http: httpx.AsyncClient
) -> None:
    await log.create("s", max_events=3)
    ids = [await log.append("s", str(i)) for i in range(6)]
    await log.close("s")
    response = await http.get("/s/s", headers={"Last-Event-ID": ids[0]})
    events = SSEDecoder().decode(response.content)
    assert events[0].event == "reset"
    assert orjson.loads(events[0].data)["reason"] == "retention"
    assert events[0].id == ids[2]  # just before the first retained (ids[3])
    assert [e.data for e in events[1:]] == ["3", "4", "5"]
    other_epoch = await http.get("/s/s", headers={"Last-Event-ID": "nope-1"})
    first = SSEDecoder().decode(other_epoch.content)[0]
    assert first.event == "reset"
    assert orjson.loads(first.data)["reason"] in ("epoch", "invalid_id")


def test_sse_bytes_frames_ids_names_and_multiline_data() -> None:
    assert sse_bytes("e-1", None, "x") == b"id: e-1\ndata: x\n\n"
    assert sse_bytes(None, "n", "x") == b"event: n\ndata: x\n\n"
    assert sse_bytes("e-2.0", "n", "a\nb") == b"id: e-2.0\nevent: n\ndata: a\ndata: b\n\n"
    with pytest.raises(SSEEncodeError):
        sse_bytes("e-1", "evil\ndata: injected", "x")


async def test_response_wraps_any_event_iterator_with_the_hosts_settings(
    log: MemoryEventLog,
) -> None:
    host = StreamHost(log, ping=5.0, send_timeout=7.0)
    closed: list[bool] = []

    async def events() -> AsyncIterator[ServerSentEvent | bytes]:
        try:
            yield ServerSentEvent("one", id="1")
            yield sse_bytes("2", "named", "two")
        finally:
            closed.append(True)

    response = host.response(events(), {"X-Test": "yes"})
    assert response.headers["x-test"] == "yes"
    assert response.ping_interval == 5.0 and response.send_timeout == 7.0

    async def read(request: Request) -> Response:
        return host.response(events(), {"X-Test": "yes"})

    app = Starlette(routes=[Route("/r", read)])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        got = await client.get("/r")
    await host.aclose()
    assert got.headers["content-type"].startswith("text/event-stream")
    assert got.headers["x-test"] == "yes"
    decoded = SSEDecoder().decode(got.content)
    assert [(e.id, e.event, e.data) for e in decoded] == [
        ("1", "message", "one"),
        ("2", "named", "two"),
    ]
    assert closed == [True]  # the served iterator was closed (the first one never ran)


async def test_a_reader_at_the_tail_gets_its_head_at_once_then_events_by_push(
    log: MemoryEventLog,
) -> None:
    """``StreamHost.sse``: the route checked the stream, so the head does not wait for an
    event; the caught-up reader is parked and an append reaches it by push (the same bytes
    object for every reader), then the end of the stream ends the body."""
    from tests.responses._peer import FakeClient, streaming

    host = StreamHost(log)
    info = await log.create("s")
    clients = [FakeClient() for _ in range(3)]
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": []})
    async with contextlib.AsyncExitStack() as stack:
        tasks = [
            await stack.enter_async_context(streaming(host.sse(request, "s", info.last_id), c))
            for c in clients
        ]
        for client in clients:
            await client.wait_for(lambda client=client: bool(client.messages))  # head, no event
        await eventually(lambda: log._streams["s"].notifier.parked == 3)
        await log.append("s", "pushed")
        for client in clients:
            await client.wait_body(b"data: pushed\n\n")
        bodies = [client.body_messages[0]["body"] for client in clients]
        assert all(body is bodies[0] for body in bodies)  # encoded once, shared
        await log.close("s")
        for task in tasks:
            await task
    assert all(client.ended for client in clients)
    await host.aclose()
