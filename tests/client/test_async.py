"""The async client against a scripted transport: reconnect policy, headers, errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from mianzhang import (
    ClientError,
    EventTooLarge,
    ReconnectExhausted,
    ResponseRejected,
    ServerSentEvent,
)
from mianzhang.client import Backoff, EventStream, ResetEvent, connect
from tests.client.scripted import Script, Sleeps, Stream

URL = "http://test/stream"
TOP = Backoff(max_delay=10.0, uniform=lambda lo, hi: hi)  # deterministic: the upper bound


async def collect(stream: EventStream) -> list[ServerSentEvent]:
    return [event async for event in stream]


def conn_error() -> httpx.ConnectError:
    return httpx.ConnectError("refused")


async def test_events_then_eof_then_204_ends_cleanly() -> None:
    script = Script([Stream([b"id: 1\ndata: a\n\n", b"id: 2\ndata: b\n\n"])])
    sleeps = Sleeps()
    async with (
        script.async_client() as client,
        connect(URL, client=client, sleep=sleeps) as stream,
    ):
        events = await collect(stream)
        assert [(e.id, e.data, e.event) for e in events] == [
            ("1", "a", "message"),
            ("2", "b", "message"),
        ]
        assert stream.last_event_id == "2"
        assert stream.reconnects == 1
        assert stream.retry == 3000
        assert not client.is_closed  # a caller's client is left open
    assert sleeps.delays == [3.0]  # the spec's default reconnection time, no jitter
    assert script.last_ids() == [None, b"2"]
    assert script.requests[0].headers["accept"] == "text/event-stream"
    assert script.requests[0].headers["cache-control"] == "no-store"


async def test_initial_last_event_id_and_caller_headers_are_sent() -> None:
    script = Script([])
    async with (
        script.async_client() as client,
        connect(
            URL,
            client=client,
            last_event_id="ab-7",
            headers={"authorization": "Bearer t", "Last-Event-ID": "ignored"},
            params={"q": "1"},
        ) as stream,
    ):
        assert await collect(stream) == []
    request = script.requests[0]
    assert script.last_ids() == [b"ab-7"]
    assert request.headers["authorization"] == "Bearer t"
    assert request.url.params["q"] == "1"


async def test_last_event_id_is_utf8_and_omitted_once_cleared() -> None:
    script = Script(
        [
            Stream(["id: ünï-☃\ndata: x\n\n".encode()]),
            Stream([b"id\ndata: y\n\n"]),  # an empty id clears the last event id
        ]
    )
    async with script.async_client() as client, connect(URL, client=client, sleep=Sleeps()) as s:
        assert [e.data for e in await collect(s)] == ["x", "y"]
    assert script.last_ids() == [None, "ünï-☃".encode(), None]


async def test_server_retry_replaces_the_reconnection_time_at_once() -> None:
    script = Script([Stream([b"retry: 700\nid: 1\ndata: a\n\n"])])
    sleeps = Sleeps()
    async with script.async_client() as client, connect(URL, client=client, sleep=sleeps) as s:
        await collect(s)
        assert s.retry == 700
    assert sleeps.delays == [0.7]


async def test_backoff_grows_on_consecutive_failures_then_gives_up() -> None:
    script = Script([conn_error() for _ in range(10)])
    sleeps = Sleeps()
    async with script.async_client() as client:
        stream = connect(
            URL, client=client, retry=1000, backoff=TOP, max_reconnects=4, sleep=sleeps
        )
        with pytest.raises(ReconnectExhausted) as info:
            await stream.__aenter__()
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert sleeps.delays == [2.0, 4.0, 8.0, 10.0]
    assert len(script.requests) == 5  # the first attempt and 4 reconnects
    assert stream.closed


async def test_jitter_draws_each_delay_from_a_growing_interval() -> None:
    bounds: list[tuple[float, float]] = []

    def uniform(lo: float, hi: float) -> float:
        bounds.append((lo, hi))
        return (lo + hi) / 2

    script = Script([conn_error() for _ in range(4)])
    sleeps = Sleeps()
    async with script.async_client() as client:
        stream = connect(
            URL,
            client=client,
            retry=500,
            backoff=Backoff(max_delay=3.0, uniform=uniform),
            sleep=sleeps,
        )
        async with stream:
            assert await collect(stream) == []  # the 5th request gets 204
    assert bounds == [(0.5, 1.0), (0.5, 2.0), (0.5, 3.0), (0.5, 3.0)]
    assert sleeps.delays == [0.75, 1.25, 1.75, 1.75]


async def test_a_connection_that_delivered_an_event_resets_the_backoff() -> None:
    script = Script(
        [
            conn_error(),
            conn_error(),
            Stream([b"id: 1\ndata: a\n\n"]),  # then EOF
            conn_error(),
        ]
    )
    sleeps = Sleeps()
    async with (
        script.async_client() as client,
        connect(URL, client=client, retry=1000, backoff=TOP, sleep=sleeps) as s,
    ):
        assert [e.data for e in await collect(s)] == ["a"]
        assert s.reconnects == 4
    assert sleeps.delays == [2.0, 4.0, 1.0, 2.0]
    assert script.last_ids() == [None, None, None, b"1", b"1"]


async def test_network_error_mid_stream_resumes_after_the_last_event() -> None:
    script = Script(
        [
            Stream([b"id: 1\ndata: a\n\nid: 2\ndata: b\n\nid: 3\nda"], error=httpx.ReadError("x")),
            Stream([b"id: 3\ndata: c\n\n"], error=httpx.ReadTimeout("stalled")),
            Stream([b"id: 4\ndata: d\n\n"], error=httpx.RemoteProtocolError("cut")),
        ]
    )
    sleeps = Sleeps()
    async with (
        script.async_client() as client,
        connect(URL, client=client, retry=100, sleep=sleeps) as s,
    ):
        assert [e.data for e in await collect(s)] == ["a", "b", "c", "d"]
    assert script.last_ids() == [None, b"2", b"3", b"4"]
    assert sleeps.delays == [0.1, 0.1, 0.1]
    assert script.all_closed


async def test_eof_without_any_event_counts_as_a_failure() -> None:
    script = Script([Stream([b": just a comment\n"]) for _ in range(5)])
    async with script.async_client() as client:
        stream = connect(URL, client=client, max_reconnects=2, sleep=Sleeps())
        with pytest.raises(ReconnectExhausted) as info:
            async with stream:
                await collect(stream)
    assert info.value.__cause__ is None
    assert len(script.requests) == 3


async def test_unterminated_event_and_its_id_are_discarded() -> None:
    script = Script([Stream([b"id: 1\ndata: one\n\nid: 2\ndata: two\n"])])
    async with script.async_client() as client, connect(URL, client=client, sleep=Sleeps()) as s:
        assert [e.data for e in await collect(s)] == ["one"]
    assert script.last_ids() == [None, b"1"]


@pytest.mark.parametrize(
    ("status", "content_type"),
    [
        (404, "text/plain"),
        (500, "application/json"),
        (200, "text/plain"),
        (201, "text/event-stream"),
    ],
)
async def test_rejected_responses_raise_and_are_never_retried(
    status: int, content_type: str
) -> None:
    script = Script(
        [Stream([b"x" * 100, b"y" * 100], status=status, headers={"content-type": content_type})]
    )
    async with script.async_client() as client:
        with pytest.raises(ResponseRejected) as info:
            async with connect(URL, client=client, max_error_body=150, sleep=Sleeps()):
                pytest.fail("entered a rejected stream")
    assert (info.value.status_code, info.value.content_type) == (status, content_type)
    assert info.value.body == b"x" * 100 + b"y" * 50
    assert len(script.requests) == 1
    assert script.all_closed


async def test_rejection_after_a_reconnect_ends_the_iteration_with_the_error() -> None:
    script = Script([Stream([b"data: a\n\n"]), Stream(status=503, headers={})])
    async with (
        script.async_client() as client,
        connect(URL, client=client, sleep=Sleeps()) as stream,
    ):
        events = []
        with pytest.raises(ResponseRejected) as info:
            async for event in stream:
                events.append(event.data)
        assert events == ["a"]
        assert info.value.status_code == 503
        assert await collect(stream) == []  # stays ended
    assert len(script.requests) == 2


@pytest.mark.parametrize(
    "content_type",
    ["text/event-stream; charset=utf-8", "Text/Event-Stream", " text/event-stream ;x=y"],
)
async def test_content_type_parameters_and_case_are_accepted(content_type: str) -> None:
    script = Script([Stream([b"data: a\n\n"], headers={"content-type": content_type})])
    async with script.async_client() as client, connect(URL, client=client, sleep=Sleeps()) as s:
        assert [e.data for e in await collect(s)] == ["a"]


async def test_204_on_the_first_request_yields_nothing() -> None:
    script = Script([Stream(status=204, headers={})])
    async with script.async_client() as client, connect(URL, client=client) as s:
        assert await collect(s) == []
        assert s.reconnects == 0


async def test_event_too_large_propagates_without_reconnecting() -> None:
    script = Script([Stream([b"data: ", b"x" * 5000, b"\n\n"])])
    async with (
        script.async_client() as client,
        connect(URL, client=client, max_event_size=1000, sleep=Sleeps()) as stream,
    ):
        with pytest.raises(EventTooLarge):
            await collect(stream)
        assert await collect(stream) == []
    assert len(script.requests) == 1
    assert script.all_closed


async def test_reset_events_are_typed_and_others_pass_through() -> None:
    reset = b'event: reset\ndata: {"reason": "epoch", "requested": "a-5", "epoch": "b"}\n\n'
    script = Script([Stream([reset, b"event: reset\ndata: garbage\n\n", b"data: z\n\n"])])
    async with script.async_client() as client, connect(URL, client=client, sleep=Sleeps()) as s:
        first, second, third = await collect(s)
    assert isinstance(first, ResetEvent)
    assert (first.reason, first.requested, first.first_available, first.epoch) == (
        "epoch",
        "a-5",
        None,
        "b",
    )
    assert type(second) is ServerSentEvent and second.event == "reset"
    assert third.data == "z"


async def test_reconnect_event_is_not_yielded_and_reconnects_after_its_retry() -> None:
    script = Script(
        [
            Stream(
                [
                    b"id: 1\ndata: a\n\nevent: reconnect\ndata: bye\nretry: 250\n\n"
                    b"id: 2\ndata: b\n\n",
                    b"id: 3\ndata: never read\n\n",
                ]
            ),
            conn_error(),
        ]
    )
    sleeps = Sleeps()
    async with (
        script.async_client() as client,
        connect(URL, client=client, backoff=TOP, sleep=sleeps) as s,
    ):
        # events decoded with the reconnect request are still delivered, nothing after it
        assert [e.data for e in await collect(s)] == ["a", "b"]
    # not a failure: exactly the hint; then one real failure backs off from 1 failure
    assert sleeps.delays == [0.25, 0.5]
    assert script.last_ids() == [None, b"2", b"2"]
    assert script.all_closed


async def test_last_event_id_trails_events_not_yet_handed_out() -> None:
    script = Script([Stream([b"id: 1\ndata: a\n\nid: 2\ndata: b\n\nid: 3\n\n"])])
    async with script.async_client() as client, connect(URL, client=client, sleep=Sleeps()) as s:
        assert (await anext(s)).id == "1"
        assert s.last_event_id == "1"
        assert (await anext(s)).id == "2"
        assert s.last_event_id == "3"  # the id-only update after the last handed-out event


async def test_post_with_json_is_sent_again_on_reconnect() -> None:
    script = Script([Stream([b"id: 1\ndata: a\n\n"])])
    async with (
        script.async_client() as client,
        connect(URL, client=client, method="POST", json={"q": 1}, sleep=Sleeps()) as s,
    ):
        await collect(s)
    assert [r.method for r in script.requests] == ["POST", "POST"]
    assert [r.content for r in script.requests] == [b'{"q":1}', b'{"q":1}']


async def test_owned_client_follows_redirects_and_is_closed_on_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script = Script([Stream([b"data: a\n\n"])])
    created: list[httpx.AsyncClient] = []

    class Recording(httpx.AsyncClient):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(transport=httpx.MockTransport(script.async_handler), **kwargs)
            created.append(self)

    monkeypatch.setattr(httpx, "AsyncClient", Recording)
    async with connect(URL, sleep=Sleeps()) as stream:
        assert (await anext(stream)).data == "a"
    assert len(created) == 1
    assert created[0].follow_redirects
    assert created[0].is_closed
    assert script.all_closed


async def test_unsupported_scheme_is_a_client_error_not_a_retry() -> None:
    with pytest.raises(ClientError) as info:
        async with connect("ftp://example.invalid/x", sleep=Sleeps()):
            pass
    assert isinstance(info.value.__cause__, httpx.UnsupportedProtocol)


async def test_misuse_fails_loudly() -> None:
    stream = connect(URL)
    with pytest.raises(RuntimeError):
        await anext(stream)
    script = Script([])
    async with script.async_client() as client:
        stream = connect(URL, client=client)
        async with stream:
            pass
        with pytest.raises(RuntimeError):
            await stream.__aenter__()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"retry": -1},
        {"retry": 1.5},
        {"max_reconnects": -1},
        {"last_event_id": "a\nb"},
        {"read_timeout": 0},
        {"max_event_size": 0},
    ],
)
def test_invalid_arguments_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        connect(URL, **kwargs)  # type: ignore[arg-type]


async def test_iteration_stops_after_close_even_with_decoded_events() -> None:
    script = Script([Stream([b"data: a\n\ndata: b\n\n"])])
    async with script.async_client() as client:
        stream = connect(URL, client=client)
        async with stream:
            assert (await anext(stream)).data == "a"
        assert stream.closed and stream.response is None
        assert await collect(stream) == []
    assert script.all_closed


async def test_initial_last_event_id_survives_events_without_an_id() -> None:
    script = Script([Stream([b"data: x\n\n"])])
    async with (
        script.async_client() as client,
        connect(URL, client=client, last_event_id="ab-7", sleep=Sleeps()) as s,
    ):
        (event,) = await collect(s)
    assert event.id == "ab-7"
    assert script.last_ids() == [b"ab-7", b"ab-7"]
