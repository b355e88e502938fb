"""Errors: before the first byte they propagate (a normal HTTP error); after the headers they
become an in-band ``error`` event, masked unless mianzhang's own; failing helpers are logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator

import orjson
import pytest
from starlette.types import Message

from mianzhang import EventSourceResponse, SSEEncodeError, StreamError, StreamSupervisor
from tests._support.asgi import http_scope
from tests.responses._peer import FakeClient, datas, decode, serve


async def test_error_before_the_first_byte_is_raised_for_a_normal_http_error() -> None:
    async def broken() -> AsyncIterator[str]:
        raise RuntimeError("boom")
        yield "never"  # pragma: no cover

    supervisor = StreamSupervisor(hook_signals=False)
    client = FakeClient()
    with pytest.raises(RuntimeError, match="boom"):
        await serve(EventSourceResponse(broken(), supervisor=supervisor), client)
    assert client.messages == []
    assert supervisor.stats.errors == 1
    assert supervisor.stats.active == 0


async def test_error_before_the_first_byte_of_a_sync_generator() -> None:
    def broken() -> Iterator[str]:
        raise ValueError("bad input")
        yield "never"  # pragma: no cover

    client = FakeClient()
    with pytest.raises(ValueError, match="bad input"):
        await serve(EventSourceResponse(broken()), client)
    assert client.messages == []


async def test_an_unencodable_first_item_is_an_http_error() -> None:
    client = FakeClient()
    with pytest.raises(SSEEncodeError):
        await serve(EventSourceResponse([{"data": "x", "event": "a\nb"}]), client)
    assert client.messages == []


async def test_error_after_headers_becomes_an_error_event_and_a_clean_end() -> None:
    async def gen() -> AsyncIterator[str]:
        yield "before"
        raise StreamError("quota exhausted for this stream")

    supervisor = StreamSupervisor(hook_signals=False)
    client = FakeClient()
    await serve(EventSourceResponse(gen(), supervisor=supervisor), client)
    assert client.start["status"] == 200
    events = decode(client.body)
    assert [e.event for e in events] == ["message", "error"]
    assert events[0].data == "before"
    assert orjson.loads(events[1].data) == {
        "type": "StreamError",
        "message": "quota exhausted for this stream",
    }
    assert client.body.endswith(
        b'event: error\ndata: {"type":"StreamError",'
        b'"message":"quota exhausted for this stream"}\n\n'
    )
    assert b"Traceback" not in client.body
    assert client.ended
    assert supervisor.stats.errors == 1


async def test_foreign_exception_messages_are_masked() -> None:
    async def gen() -> AsyncIterator[str]:
        yield "before"
        raise RuntimeError("password=hunter2 at db.internal:5432")

    client = FakeClient()
    await serve(EventSourceResponse(gen()), client)
    error = decode(client.body)[-1]
    assert error.event == "error"
    body = orjson.loads(error.data)
    assert set(body) == {"type", "message"}
    assert body["type"] == "internal_error"
    assert b"hunter2" not in client.body
    assert b"RuntimeError" not in client.body
    assert b"Traceback" not in client.body
    assert client.ended


async def test_error_after_headers_with_no_event_yet() -> None:
    """Headers go out after ``open_timeout`` without an item; a failure after that is in-band."""
    client = FakeClient()

    async def gen() -> AsyncIterator[str]:
        await client.wait_for(
            lambda: any(m["type"] == "http.response.start" for m in client.messages)
        )
        raise StreamError("late failure")
        yield "never"  # pragma: no cover

    await serve(EventSourceResponse(gen(), open_timeout=0.01), client)
    events = decode(client.body)
    assert [(e.event, orjson.loads(e.data)["message"]) for e in events] == [
        ("error", "late failure")
    ]
    assert client.ended


async def test_a_failing_data_sender_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def data_sender() -> None:
        raise LookupError("sender broke")

    client = FakeClient()

    async def gen() -> AsyncIterator[str]:
        yield "a"

    with caplog.at_level("ERROR", logger="mianzhang.responses"):
        await serve(EventSourceResponse(gen(), data_sender_callable=data_sender), client)
    assert any(r.exc_info and isinstance(r.exc_info[1], LookupError) for r in caplog.records), (
        caplog.records
    )


async def test_a_failing_receive_is_logged_once_and_the_stream_still_completes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The disconnect watcher is a task on the server's ``receive()``: if that raises, the
    stream goes on (only disconnect detection is lost) and the failure is logged once."""
    client = FakeClient()

    async def broken_receive() -> Message:
        raise RuntimeError("receive broke")

    async def events() -> AsyncIterator[str]:
        for i in range(3):
            yield str(i)

    with caplog.at_level(logging.ERROR, logger="mianzhang.responses"):
        async with asyncio.timeout(5):
            await EventSourceResponse(events())(http_scope(), broken_receive, client.send)
    assert datas(b"".join(m.get("body", b"") for m in client.messages[1:])) == ["0", "1", "2"]
    failures = [r for r in caplog.records if r.getMessage() == "stream helper failed"]
    assert len(failures) == 1
    assert isinstance(failures[0].exc_info and failures[0].exc_info[1], RuntimeError)
