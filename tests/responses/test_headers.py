"""Headers and status: exactly the three SSE headers by default, the caller's replacing them,
never ``Connection``; ``HEAD`` without starting the iterator; default headers encoded once per
class and owned per response."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.background import BackgroundTask

from mianzhang import EventSourceResponse, NDJSONResponse, TextStreamResponse
from mianzhang._responses import _StreamingBase
from tests._support.asgi import http_scope
from tests.responses._peer import FakeClient, serve

EXPECTED_SSE_HEADERS = {
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
}


async def test_sse_headers_are_exactly_the_three() -> None:
    client = FakeClient()
    await serve(EventSourceResponse([]), client)
    assert client.start["status"] == 200
    assert sorted(client.headers) == sorted(EXPECTED_SSE_HEADERS)


@pytest.mark.parametrize("name", ["Connection", "connection", "CONNECTION"])
async def test_connection_header_is_never_sent_even_when_given(name: str) -> None:
    client = FakeClient()
    response = EventSourceResponse([], headers={name: "keep-alive", "X-Extra": "1"})
    await serve(response, client)
    assert sorted(client.headers) == sorted(EXPECTED_SSE_HEADERS | {(b"x-extra", b"1")})
    assert all(k != b"connection" for k, _ in client.headers)


async def test_caller_headers_replace_defaults_case_insensitively() -> None:
    client = FakeClient()
    response = EventSourceResponse(
        [], headers={"cache-control": "no-store", "X-Accel-Buffering": "yes"}
    )
    await serve(response, client)
    assert sorted(client.headers) == sorted(
        {
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-store"),
            (b"x-accel-buffering", b"yes"),
        }
    )


async def test_status_code_and_background_are_passed_through() -> None:
    ran: list[str] = []
    client = FakeClient()
    response = EventSourceResponse(
        ["x"], status_code=201, background=BackgroundTask(ran.append, "bg")
    )
    await serve(response, client)
    assert client.start["status"] == 201
    assert ran == ["bg"]


@pytest.mark.parametrize(
    ("cls", "content_type"),
    [
        (NDJSONResponse, b"application/x-ndjson"),
        (TextStreamResponse, b"text/plain; charset=utf-8"),
    ],
)
async def test_other_streams_headers(cls: type[_StreamingBase], content_type: bytes) -> None:
    client = FakeClient()
    await serve(cls([], headers={"Connection": "close"}), client)
    assert sorted(client.headers) == sorted(
        {
            (b"content-type", content_type),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        }
    )


async def test_head_sends_headers_and_empty_body_without_starting_the_iterator() -> None:
    started = False
    ran: list[str] = []

    async def never_ending() -> AsyncIterator[str]:
        nonlocal started
        started = True
        while True:
            yield "x"
            await asyncio.sleep(0)

    client = FakeClient()
    response = EventSourceResponse(never_ending(), background=BackgroundTask(ran.append, "bg"))
    await serve(response, client, http_scope("HEAD"))
    assert sorted(client.headers) == sorted(EXPECTED_SSE_HEADERS)
    assert client.body == b""
    assert client.ended
    assert not started
    assert ran == ["bg"]


def test_default_headers_are_shared_encoded_but_each_response_owns_its_list() -> None:
    """The class's default headers are encoded once; editing one response's headers (Starlette's
    ``MutableHeaders`` works on ``raw_headers`` in place) never changes another's."""
    first, second = EventSourceResponse(iter(())), EventSourceResponse(iter(()))
    assert first.raw_headers == second.raw_headers
    assert first.raw_headers is not second.raw_headers
    first.headers["x-trace"] = "1"
    first.headers["cache-control"] = "no-store"
    assert (b"x-trace", b"1") not in second.raw_headers
    assert dict(second.raw_headers)[b"cache-control"] == b"no-cache"
    assert dict(EventSourceResponse(iter(())).raw_headers)[b"cache-control"] == b"no-cache"


def test_a_subclass_with_its_own_init_headers_gets_it_called() -> None:
    class Tagged(EventSourceResponse):
        def init_headers(self, headers: Any = None) -> None:
            super().init_headers(headers)
            self.raw_headers.append((b"x-tagged", b"yes"))

    assert (b"x-tagged", b"yes") in Tagged(iter(())).raw_headers
    assert (b"x-tagged", b"yes") not in EventSourceResponse(iter(())).raw_headers


def test_another_media_type_is_encoded_for_that_response_only() -> None:
    other = EventSourceResponse(iter(()), media_type="text/event-stream; x=1")
    assert dict(other.raw_headers)[b"content-type"].startswith(b"text/event-stream; x=1")
    default = dict(EventSourceResponse(iter(())).raw_headers)[b"content-type"]
    assert default == b"text/event-stream; charset=utf-8"


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Channel": "news"},
        {"X-Stream-Id": "s", "X-Other": "b"},
        {"Cache-Control": "no-store"},  # replaces a default: init_headers decides
        {"X-Accel-Buffering": "yes"},
        {"content-type": "text/event-stream"},
    ],
)
def test_the_callers_headers_are_listed_as_init_headers_lists_them(
    headers: dict[str, str],
) -> None:
    fast = EventSourceResponse([], headers=headers).raw_headers
    slow = EventSourceResponse([])
    slow.init_headers(slow._stream_headers(headers))
    assert sorted(fast) == sorted(slow.raw_headers)
